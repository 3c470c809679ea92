package sqssource

import "testing"

// FuzzUnwrapSNS: any body gives a record or an error, never a panic.
func FuzzUnwrapSNS(f *testing.F) {
	for _, s := range []string{
		`{"Type":"Notification","Message":"{\"a\":1}"}`, `{"Type":"SubscriptionConfirmation"}`,
		`{"Type":"Notification","Message":null}`, `{"Type":1}`, `[]`, `x`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec, err := unwrapSNS(body)
		if err == nil && rec == nil {
			t.Fatal("no record and no error")
		}
	})
}
