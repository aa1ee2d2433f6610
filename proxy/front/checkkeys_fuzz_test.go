package front

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// refCheckKeys is checkKeys written plainly over encoding/json's token stream, to compare with.
// It answers "" when the keys are fine, "dup" or "case".
func refCheckKeys(body []byte, top *keySet) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		obj, wantKey bool
		keys, next   *keySet
		seen         map[string]bool
	}
	var stack []*frame
	next := top
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		var fr *frame
		if len(stack) > 0 {
			fr = stack[len(stack)-1]
		}
		if fr != nil && fr.obj && fr.wantKey {
			if tok == json.Delim('}') {
				stack = stack[:len(stack)-1]
			} else {
				k := tok.(string)
				if fr.seen[k] {
					return "dup"
				}
				fr.seen[k], fr.wantKey, fr.next = true, false, nil
				if fr.keys != nil {
					if sub, ok := fr.keys.fields[k]; ok {
						fr.next = sub
					} else {
						for name := range fr.keys.fields {
							if strings.EqualFold(k, name) {
								return "case"
							}
						}
					}
				}
			}
		} else {
			if fr != nil {
				next = fr.next
				fr.wantKey = fr.obj
			}
			switch tok {
			case json.Delim('{'):
				stack = append(stack, &frame{obj: true, wantKey: true, keys: next, seen: map[string]bool{}})
			case json.Delim('['):
				stack = append(stack, &frame{})
			case json.Delim(']'):
				stack = stack[:len(stack)-1]
			}
		}
		if len(stack) == 0 {
			return ""
		}
	}
}

func FuzzCheckKeys(f *testing.F) {
	for _, s := range []string{
		okMessage,
		`{"to":"+6591234567","To":"x"}`,
		`{"template":{"id":"a","params":{"x":"1","x":"2"}},"metadata":{"\u0061":"1","a":"2"}}`,
		`{"ſcope":1,"Kind":[{"a":1,"a":2}],"body":"\"to\""}`,
		"{\"metadata\":{\"a\xff\":\"1\",\"a\xfe\":\"2\"}}",
		`[{"to":1},{"to":2}]`,
	} {
		f.Add([]byte(s))
	}
	ks := keysOf(reflect.TypeOf(&messageRequest{}))
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) || bytes.Count(body, []byte("["))+bytes.Count(body, []byte("{")) > maxDepth {
			return
		}
		want := refCheckKeys(body, ks)
		err := checkKeys(body, ks)
		var got string
		if err != nil {
			got = "dup"
			if strings.Contains(err.Error(), "case-sensitive") {
				got = "case"
			}
		}
		if got != want {
			t.Fatalf("checkKeys %q says %q (%v), reference %q", body, got, err, want)
		}
	})
}
