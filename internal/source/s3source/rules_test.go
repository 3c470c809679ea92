package s3source

import (
	"reflect"
	"strings"
	"testing"
)

func TestRules(t *testing.T) {
	rs, err := compileRules([]KeyRule{{Match: "custom/**/*.log", Format: "nginx"}, {Match: "AWSLogs/*/elasticloadbalancing/**", Format: "lines"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		give string
		want string // "" when none matches
	}{
		{give: "custom/a/b/access.log", want: "nginx"},
		{give: "custom/access.log", want: "nginx"},
		{give: "AWSLogs/123456789012/elasticloadbalancing/us-east-1/2026/01/02/x.log.gz", want: "lines"}, // configured first
		{give: "prod/AWSLogs/123456789012/elasticloadbalancing/us-east-1/x.log.gz", want: "alb"},
		{give: "AWSLogs/123456789012/CloudTrail/us-east-1/2026/01/02/x.json.gz", want: "cloudtrail"},
		{give: "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2026/01/02/x.json.gz", want: FormatSkip},
		{give: "AWSLogs/123456789012/vpcflowlogs/us-east-1/2026/01/02/x.log.gz", want: "vpcflow"},
		{give: "cf/E2EXAMPLE1234.2026-01-02-03.a1b2c3d4.gz", want: "cloudfront"},
		{give: "E2EXAMPLE1234.2026-01-02-03.a1b2c3d4.gz", want: "cloudfront"},
		{give: "AWSLogs/elasticloadbalancing/x", want: ""}, // no account segment
		{give: "misc/notes.txt", want: ""},
	}
	for _, tt := range tests {
		got, _ := rs.match(tt.give)
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestParseNotification(t *testing.T) {
	direct := `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a/my+file%3D1.log","size":5,"eTag":"abc"}}},` +
		`{"eventSource":"aws:s3","eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"gone"}}}]}`
	want := []ObjectRef{{Bucket: "b", Key: "a/my file=1.log", Size: 5, ETag: "abc"}}
	tests := []struct {
		name string
		give string
		want []ObjectRef
		err  string
	}{
		{name: "direct", give: direct, want: want},
		{name: "sns", give: `{"Type":"Notification","MessageId":"x","Message":` + quote(direct) + `}`, want: want},
		{name: "eventbridge", give: `{"detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":"b"},"object":{"key":"a/my file=1.log","size":5,"etag":"abc"}}}`, want: want},
		{name: "eventbridge deleted", give: `{"detail-type":"Object Deleted","source":"aws.s3","detail":{}}`},
		{name: "test event", give: `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-02T03:04:05.000Z","Bucket":"b"}`},
		{name: "sns test event", give: `{"Type":"Notification","Message":"{\"Event\":\"s3:TestEvent\"}"}`},
		{name: "not json", give: `hello`, err: "not an S3 event notification"},
		{name: "other json", give: `{"hello":1}`, err: "not an S3 event notification"},
		{name: "bad key escape", give: `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}}]}`, err: "Records[0].s3.object.key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNotification([]byte(tt.give))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
