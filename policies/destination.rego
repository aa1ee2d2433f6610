# Where a message may go: the region serves only the countries listed in its data (residency:
# a country another region serves is refused with that region's name), and a country may restrict
# which categories of message it accepts.
package smsproxy

# country_data is the region's entry for the destination country; undefined when not served.
country_data := data.region.countries[input.message.country]

# country_label names the country in sentences.
country_label := country if {
	country != ""
} else := "an unknown country"

# Refuse countries this region does not serve, naming the region that does when the data knows it.
class_deny contains {
	"code": "country_not_served",
	"message": served_elsewhere_message,
	"rule": "smsproxy.destination.country_not_served",
} if {
	not country_data
}

served_elsewhere_message := sprintf("Messages to %s are served by region %q, not by region %q; send them through that region.", [country, region, data.region.region]) if {
	region := data.region.residency[country]
} else := sprintf("Messages to %s are not served in this region.", [country_label])

# Refuse categories the country does not accept, when the country lists the ones it does.
class_deny contains {
	"code": "category_not_allowed",
	"message": sprintf("Messages of category %q may not be sent to %s.", [category, country_label]),
	"rule": "smsproxy.destination.category_not_allowed",
} if {
	allowed := country_data.categories
	not category in allowed
}
