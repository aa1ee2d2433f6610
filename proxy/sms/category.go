package sms

// Categories lists every category an app may send, in a stable order.
var Categories = []Category{CategoryOTP, CategoryTransaction, CategoryAlert, CategorySecurity, CategoryMarketing}

// ParseCategory returns the category named s. Names are matched exactly (lower case, as in
// the constants); anything else, including an empty string, is an *Error with code "invalid_category".
func ParseCategory(s string) (Category, error) {
	switch c := Category(s); c {
	case CategoryOTP, CategoryTransaction, CategoryAlert, CategorySecurity, CategoryMarketing:
		return c, nil
	}
	return "", errorf(CodeInvalidCategory, "category", "the category must be one of otp, transaction, alert, security, marketing")
}
