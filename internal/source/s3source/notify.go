package s3source

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// ObjectRef is one S3 object to read: announced by a notification, or listed.
type ObjectRef struct {
	Bucket string
	Key    string
	Size   int64
	ETag   string
}

// s3Event is the body S3 sends for event notifications (and the Message of SNS and
// the test event).
type s3Event struct {
	Records []struct {
		EventSource string `json:"eventSource"`
		EventName   string `json:"eventName"`
		S3          struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key  string `json:"key"`
				Size int64  `json:"size"`
				ETag string `json:"eTag"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
	// Event is s3:TestEvent on the message S3 sends when notifications are set up.
	Event string `json:"Event"`
	// SNS envelope.
	Type    string `json:"Type"`
	Message string `json:"Message"`
	// EventBridge.
	DetailType string `json:"detail-type"`
	Source     string `json:"source"`
	Detail     struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key  string `json:"key"`
			Size int64  `json:"size"`
			ETag string `json:"etag"`
		} `json:"object"`
	} `json:"detail"`
}

// parseNotification reads an SQS message body: an S3 event notification as S3
// sends it, the same wrapped in an SNS notification, or an EventBridge "Object
// Created" event. It returns the created objects; a test event, a removal or
// another event type gives none. A body that is none of these is an error.
func parseNotification(body []byte) ([]ObjectRef, error) {
	return parseDepth(body, 0)
}

func parseDepth(body []byte, depth int) ([]ObjectRef, error) {
	var ev s3Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("not an S3 event notification: %v", err)
	}
	switch {
	case ev.Type == "Notification" && ev.Message != "":
		if depth > 0 {
			return nil, fmt.Errorf("SNS notification inside an SNS notification")
		}
		return parseDepth([]byte(ev.Message), depth+1)
	case ev.Event == "s3:TestEvent":
		return nil, nil
	case ev.DetailType != "":
		if ev.DetailType != "Object Created" {
			return nil, nil
		}
		if ev.Detail.Bucket.Name == "" || ev.Detail.Object.Key == "" {
			return nil, fmt.Errorf("EventBridge Object Created event without detail.bucket.name or detail.object.key")
		}
		// EventBridge keys are not URL-encoded.
		return []ObjectRef{{Bucket: ev.Detail.Bucket.Name, Key: ev.Detail.Object.Key,
			Size: ev.Detail.Object.Size, ETag: strings.Trim(ev.Detail.Object.ETag, `"`)}}, nil
	case ev.Records != nil:
		var out []ObjectRef
		for i, r := range ev.Records {
			if r.EventSource != "aws:s3" || !strings.HasPrefix(r.EventName, "ObjectCreated:") {
				continue
			}
			// S3 URL-encodes keys in notifications, with '+' for a space.
			key, err := url.QueryUnescape(r.S3.Object.Key)
			if err != nil {
				return nil, fmt.Errorf("Records[%d].s3.object.key: %v", i, err)
			}
			if r.S3.Bucket.Name == "" || key == "" {
				return nil, fmt.Errorf("Records[%d]: no bucket name or object key", i)
			}
			out = append(out, ObjectRef{Bucket: r.S3.Bucket.Name, Key: key, Size: r.S3.Object.Size,
				ETag: strings.Trim(r.S3.Object.ETag, `"`)})
		}
		return out, nil
	}
	return nil, fmt.Errorf("not an S3 event notification: no Records, SNS Message or EventBridge detail-type")
}
