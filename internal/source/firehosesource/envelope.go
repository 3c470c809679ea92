package firehosesource

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// envelope is the request body of the HTTP endpoint delivery specification 1.0:
// {"requestId": "...", "timestamp": <ms>, "records": [{"data": "<base64>"}, ...]}.
// The timestamp is not kept: the source stamps records with their arrival time.
type envelope struct {
	RequestID *string  `json:"requestId"`
	Records   []record `json:"records"`
}

type record struct {
	Data *string `json:"data"`
}

// request is a decoded envelope.
type request struct {
	// ID is the body's requestId.
	ID string
	// Records are the decoded records that are not empty. They share one buffer
	// owned by the request.
	Records [][]byte
	// Empty counts records with empty data, which Firehose permits and which carry
	// nothing to store.
	Empty int
	// Bytes is the decoded size of the records.
	Bytes int
}

// decodeEnvelope decodes a request body. Errors name the field and, for records, the
// index of the first bad record; they never quote the data.
func decodeEnvelope(body []byte) (*request, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("body is not valid JSON at byte %d: %v", se.Offset, se)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("body: field %q is a JSON %s, want %s", te.Field, te.Value, jsonKind(te.Type.String()))
		}
		return nil, fmt.Errorf("body: %v", err)
	}
	if env.RequestID == nil || *env.RequestID == "" {
		return nil, errors.New("body: requestId is missing or empty")
	}
	if env.Records == nil {
		return nil, errors.New("body: records is missing")
	}
	req := &request{ID: *env.RequestID}
	size := 0
	for i, r := range env.Records {
		if r.Data == nil {
			return nil, fmt.Errorf("records[%d]: data is missing", i)
		}
		size += base64.StdEncoding.DecodedLen(len(*r.Data))
	}
	// One buffer for every record: one allocation however many records there are.
	buf := make([]byte, size)
	req.Records = make([][]byte, 0, len(env.Records))
	off := 0
	for i, r := range env.Records {
		if len(*r.Data) == 0 {
			req.Empty++
			continue
		}
		n, err := base64.StdEncoding.Decode(buf[off:], []byte(*r.Data))
		if err != nil {
			return nil, fmt.Errorf("records[%d].data: not valid base64: %v", i, err)
		}
		if n == 0 {
			req.Empty++
			continue
		}
		req.Records = append(req.Records, buf[off:off+n:off+n])
		off += n
	}
	req.Bytes = off
	return req, nil
}

// jsonKind names a Go type of the envelope as the JSON type it wants.
func jsonKind(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "[]firehosesource.record":
		return "an array"
	case "firehosesource.record":
		return "an object"
	}
	return goType
}
