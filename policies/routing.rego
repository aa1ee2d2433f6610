# Which providers carry a message: the destination country's list, in order of preference.
# An empty list means the region's default order. Part of the class (input.class.providers).
package smsproxy

default providers := []

providers := country_data.providers
