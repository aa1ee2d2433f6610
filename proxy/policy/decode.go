package policy

import (
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Interned keys of the decision document.
var (
	keyAllow       = ast.InternedTerm("allow")
	keyReasons     = ast.InternedTerm("reasons")
	keyLimits      = ast.InternedTerm("limits")
	keyRoute       = ast.InternedTerm("route")
	keyMasks       = ast.InternedTerm("masks")
	keyObligations = ast.InternedTerm("obligations")
	keyCode        = ast.InternedTerm("code")
	keyRule        = ast.InternedTerm("rule")
	keyKey         = ast.InternedTerm("key")
	keyRate        = ast.InternedTerm("rate")
	keyPeriod      = ast.InternedTerm("period")
	keyBurst       = ast.InternedTerm("burst")
	keyWindow      = ast.InternedTerm("window")
	keyProviders   = ast.InternedTerm("providers")
	keyField       = ast.InternedTerm("field")
	keyStyle       = ast.InternedTerm("style")
	keyKind        = ast.InternedTerm("kind")
	keyValue       = ast.InternedTerm("value")
)

// shapeError is a decision that does not have the shape of Decision.
func shapeError(format string, args ...any) error {
	return newError(CodeBadDecision, fmt.Sprintf(format, args...), nil)
}

// decodeDecision reads the decision document straight from the AST. allow is required; the lists may
// be absent (empty) but, when present, every element must be well formed. A refusal must give a reason.
func decodeDecision(v ast.Value) (Decision, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Decision{}, shapeError("decision is a %s, not an object", ast.ValueName(v))
	}
	var d Decision
	allow, ok := get(obj, keyAllow).(ast.Boolean)
	if !ok {
		return Decision{}, shapeError("decision.allow is missing or not a boolean")
	}
	d.Allow = bool(allow)

	var err error
	if d.Reasons, err = decodeList(obj, keyReasons, decodeReason); err != nil {
		return Decision{}, err
	}
	if d.Limits, err = decodeList(obj, keyLimits, decodeLimit); err != nil {
		return Decision{}, err
	}
	if d.Masks, err = decodeList(obj, keyMasks, decodeMask); err != nil {
		return Decision{}, err
	}
	if d.Obligations, err = decodeList(obj, keyObligations, decodeObligation); err != nil {
		return Decision{}, err
	}
	if r := get(obj, keyRoute); r != nil {
		ro, ok := r.(ast.Object)
		if !ok {
			return Decision{}, shapeError("decision.route is a %s, not an object", ast.ValueName(r))
		}
		if d.Route.Providers, err = decodeList(ro, keyProviders, decodeString); err != nil {
			return Decision{}, err
		}
	} else {
		d.Route.Providers = []string{}
	}
	if !d.Allow && len(d.Reasons) == 0 {
		return Decision{}, shapeError("decision refuses the message without a reason")
	}
	return d, nil
}

func get(obj ast.Object, key *ast.Term) ast.Value {
	if t := obj.Get(key); t != nil {
		return t.Value
	}
	return nil
}

// decodeList decodes the array (or set) under key; an absent key is an empty list.
func decodeList[T any](obj ast.Object, key *ast.Term, dec func(ast.Value) (T, error)) ([]T, error) {
	v := get(obj, key)
	if v == nil {
		return []T{}, nil
	}
	name := string(key.Value.(ast.String))
	var out []T
	var err error
	each := func(i int, e ast.Value) {
		if err != nil {
			return
		}
		var x T
		if x, err = dec(e); err != nil {
			err = shapeError("%s[%d]: %s", name, i, err.(*Error).Message)
			return
		}
		out = append(out, x)
	}
	switch l := v.(type) {
	case *ast.Array:
		out = make([]T, 0, l.Len())
		for i := range l.Len() {
			each(i, l.Elem(i).Value)
		}
	case ast.Set:
		out = make([]T, 0, l.Len())
		i := 0
		l.Foreach(func(t *ast.Term) { each(i, t.Value); i++ })
	default:
		return nil, shapeError("decision.%s is a %s, not an array", name, ast.ValueName(v))
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func fieldString(obj ast.Object, key *ast.Term, required bool) (string, error) {
	v := get(obj, key)
	if v == nil {
		if required {
			return "", shapeError("%v is missing", key)
		}
		return "", nil
	}
	s, ok := v.(ast.String)
	if !ok {
		return "", shapeError("%v is a %s, not a string", key, ast.ValueName(v))
	}
	return string(s), nil
}

func fieldInt(obj ast.Object, key *ast.Term, required bool) (int, error) {
	v := get(obj, key)
	if v == nil {
		if required {
			return 0, shapeError("%v is missing", key)
		}
		return 0, nil
	}
	n, ok := v.(ast.Number)
	if !ok {
		return 0, shapeError("%v is a %s, not a number", key, ast.ValueName(v))
	}
	i, ok := n.Int()
	if !ok || i < 0 {
		return 0, shapeError("%v is %v, not a whole number of zero or more", key, n)
	}
	return i, nil
}

func asObject(v ast.Value) (ast.Object, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, shapeError("is a %s, not an object", ast.ValueName(v))
	}
	return obj, nil
}

func decodeString(v ast.Value) (string, error) {
	s, ok := v.(ast.String)
	if !ok {
		return "", shapeError("is a %s, not a string", ast.ValueName(v))
	}
	return string(s), nil
}

func decodeReason(v ast.Value) (r Reason, err error) {
	obj, err := asObject(v)
	if err != nil {
		return r, err
	}
	if r.Code, err = fieldString(obj, keyCode, true); err != nil {
		return r, err
	}
	if r.Code == "" {
		return r, shapeError("code is empty")
	}
	if r.Message, err = fieldString(obj, keyMessage, true); err != nil {
		return r, err
	}
	r.Rule, err = fieldString(obj, keyRule, false)
	return r, err
}

func decodeLimit(v ast.Value) (l Limit, err error) {
	obj, err := asObject(v)
	if err != nil {
		return l, err
	}
	if l.Name, err = fieldString(obj, keyLimit, false); err != nil {
		return l, err
	}
	if l.Key, err = fieldString(obj, keyKey, true); err != nil {
		return l, err
	}
	if l.Rate, err = fieldInt(obj, keyRate, true); err != nil {
		return l, err
	}
	if l.Rate == 0 {
		return l, shapeError("rate is 0")
	}
	if l.Period, err = fieldString(obj, keyPeriod, true); err != nil {
		return l, err
	}
	if d, perr := time.ParseDuration(l.Period); perr != nil || d <= 0 {
		return l, shapeError("period %q is not a positive Go duration", l.Period)
	}
	if l.Burst, err = fieldInt(obj, keyBurst, false); err != nil {
		return l, err
	}
	if w := get(obj, keyWindow); w != nil {
		b, ok := w.(ast.Boolean)
		if !ok {
			return l, shapeError("%v is a %s, not a boolean", keyWindow, ast.ValueName(w))
		}
		l.Window = bool(b)
	}
	if l.Code, err = fieldString(obj, keyCode, true); err != nil {
		return l, err
	}
	l.Message, err = fieldString(obj, keyMessage, true)
	return l, err
}

func decodeMask(v ast.Value) (m Mask, err error) {
	obj, err := asObject(v)
	if err != nil {
		return m, err
	}
	if m.Field, err = fieldString(obj, keyField, true); err != nil {
		return m, err
	}
	m.Style, err = fieldString(obj, keyStyle, true)
	return m, err
}

func decodeObligation(v ast.Value) (o Obligation, err error) {
	obj, err := asObject(v)
	if err != nil {
		return o, err
	}
	if o.Kind, err = fieldString(obj, keyKind, true); err != nil {
		return o, err
	}
	o.Value, err = fieldString(obj, keyValue, false)
	return o, err
}
