# Which providers carry a message: the destination country's list, in order of preference.
# An empty list means the region's default order.
package smsproxy.routing

import data.smsproxy.destination

route := {"providers": providers}

default providers := []

providers := destination.country_data.providers
