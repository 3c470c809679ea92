package esbulksource

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/vigil-sec/vigil/internal/config"
	"github.com/vigil-sec/vigil/internal/parse/jsonparse"
)

// item is one action of a bulk request.
type item struct {
	action string // index, create, update or delete
	index  string
	id     string
	line   int    // 1-based line of the action
	doc    []byte // the source line: a slice of the body (nil for delete)
	// status is 0 for a document to store, else the per-item error status with
	// errType and reason.
	status  int
	errType string
	reason  string
}

// requestError is a bulk request refused whole, as Elasticsearch refuses one.
type requestError struct {
	errType string
	reason  string
}

func (e *requestError) Error() string { return e.reason }

// actionMeta is the metadata of an action line.
type actionMeta struct {
	Index *string `json:"_index"`
	ID    *string `json:"_id"`
}

// parseBulk splits an NDJSON bulk body into its items; defaultIndex is the index of
// the path (/{index}/_bulk), if any. Documents are slices of body. Blank lines are
// skipped. A malformed action line refuses the whole request.
func parseBulk(body []byte, defaultIndex string) ([]item, error) {
	var items []item
	n := 0
	next := func() ([]byte, bool) {
		for len(body) > 0 {
			n++
			line := body
			if i := bytes.IndexByte(body, '\n'); i >= 0 {
				line, body = body[:i], body[i+1:]
			} else {
				body = nil
			}
			line = bytes.TrimSpace(line)
			if len(line) > 0 {
				return line, true
			}
		}
		return nil, false
	}
	for {
		line, ok := next()
		if !ok {
			break
		}
		var action map[string]json.RawMessage
		if err := json.Unmarshal(line, &action); err != nil || len(action) != 1 {
			return nil, &requestError{"illegal_argument_exception",
				fmt.Sprintf("Malformed action/metadata line [%d], expected an object with one action (index, create, update or delete)", n)}
		}
		var it item
		var raw json.RawMessage
		for k, v := range action {
			it.action, raw = k, v
		}
		it.line = n
		switch it.action {
		case "index", "create", "update", "delete":
		default:
			return nil, &requestError{"illegal_argument_exception",
				fmt.Sprintf("Malformed action/metadata line [%d], expected one of [create, delete, index, update] but found [%.40s]", n, it.action)}
		}
		var m actionMeta
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, &requestError{"illegal_argument_exception",
				fmt.Sprintf("Malformed action/metadata line [%d], the metadata of [%s] must be an object with string _index and _id", n, it.action)}
		}
		it.index = defaultIndex
		if m.Index != nil {
			it.index = *m.Index
		}
		if m.ID != nil {
			it.id = *m.ID
		}
		if it.action != "delete" {
			doc, ok := next()
			if !ok {
				return nil, &requestError{"illegal_argument_exception",
					fmt.Sprintf("The bulk request must be terminated by a newline [\\n]; the [%s] action on line [%d] has no source line", it.action, it.line)}
			}
			it.doc = doc
		}
		switch {
		case it.action == "update" || it.action == "delete":
			it.status, it.errType = 400, "illegal_argument_exception"
			it.reason = fmt.Sprintf("line [%d]: [%s] is not supported: this endpoint is a log intake that only stores new documents (index, create)", it.line, it.action)
		case it.index == "":
			it.status, it.errType = 400, "action_request_validation_exception"
			it.reason = fmt.Sprintf("Validation Failed: 1: index is missing (line [%d]);", it.line)
		default:
			if err := jsonparse.ValidateObject(it.doc); err != nil {
				it.status, it.errType = 400, "mapper_parsing_exception"
				it.reason = fmt.Sprintf("failed to parse: line [%d]: %v", n, err)
			}
		}
		items = append(items, it)
	}
	return items, nil
}

// datasetOf maps an index name to a dataset, or "" for none (see the package doc).
func datasetOf(index string) string {
	for _, typ := range []string{"logs-", "metrics-", "traces-", "synthetics-"} {
		if rest, ok := strings.CutPrefix(index, typ); ok {
			// <type>-<dataset>-<namespace>: the namespace holds no '-'.
			if i := strings.LastIndexByte(rest, '-'); i > 0 {
				if ds := rest[:i]; config.ValidDataset(ds) {
					return ds
				}
			}
			return ""
		}
	}
	ds := stripDate(index)
	if strings.HasPrefix(ds, ".") || !config.ValidDataset(ds) {
		return ""
	}
	return ds
}

// stripDate removes a trailing -YYYY.MM.DD or -YYYY-MM-DD.
func stripDate(s string) string {
	const n = len("-2006.01.02")
	if len(s) <= n {
		return s
	}
	tail := s[len(s)-n:]
	for i := 0; i < n; i++ {
		c := tail[i]
		switch i {
		case 0:
			if c != '-' {
				return s
			}
		case 5, 8:
			if c != '.' && c != '-' {
				return s
			}
		default:
			if c < '0' || c > '9' {
				return s
			}
		}
	}
	return s[:len(s)-n]
}
