package sqssource

import "testing"

// FuzzUnwrapSNS: any body gives a record or an error, never a panic.
func FuzzUnwrapSNS(f *testing.F) {
	for _, s := range []string{
		`{"Type":"Notification","Message":"{\"a\":1}"}`, `{"Type":"SubscriptionConfirmation"}`,
		`{"Type":"Notification","Message":null}`,
		`{"Type":"Notification","Message":"m","TopicArn":"arn:x","MessageAttributes":{"a":{"Type":"String","Value":"v"},"b":1}}`, `{"Type":1}`, `[]`, `x`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := unwrapSNS(body)
		if err != nil {
			return
		}
		if env == nil || env.Message == nil {
			t.Fatal("no record and no error")
		}
		f := map[string]string{}
		env.addFields(f)
	})
}
