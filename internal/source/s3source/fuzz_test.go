package s3source

import "testing"

// FuzzParseNotification: an SQS body is untrusted; any input gives objects or an
// error, never a panic.
func FuzzParseNotification(f *testing.F) {
	f.Add([]byte(`{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}`))
	f.Add([]byte(`{"Type":"Notification","Message":"{\"Event\":\"s3:TestEvent\"}"}`))
	f.Add([]byte(`{"detail-type":"Object Created","detail":{"bucket":{"name":"b"},"object":{"key":"k"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		refs, err := parseNotification(body)
		if err == nil {
			for _, r := range refs {
				if r.Bucket == "" || r.Key == "" {
					t.Fatalf("object without bucket or key: %+v", r)
				}
			}
		}
	})
}
