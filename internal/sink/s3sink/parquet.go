package s3sink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
)

// colKind is the Parquet type of a typed column.
type colKind uint8

const (
	kindString colKind = iota
	kindInt
	kindTimestamp // nanoseconds since the Unix epoch, UTC
	kindBool
)

// docColumn holds each whole ECS document, so the typed columns lose nothing.
const docColumn = "doc"

// commonColumns are the ECS fields every dataset gets as typed columns; a document
// without the field has a null there.
var commonColumns = map[string]colKind{
	"@timestamp":                  kindTimestamp,
	"event.id":                    kindString,
	"event.dataset":               kindString,
	"event.kind":                  kindString,
	"event.action":                kindString,
	"event.outcome":               kindString,
	"event.provider":              kindString,
	"event.code":                  kindString,
	"message":                     kindString,
	"log.level":                   kindString,
	"source.ip":                   kindString,
	"source.port":                 kindInt,
	"destination.ip":              kindString,
	"destination.port":            kindInt,
	"client.ip":                   kindString,
	"network.transport":           kindString,
	"user.name":                   kindString,
	"host.name":                   kindString,
	"http.request.method":         kindString,
	"http.response.status_code":   kindInt,
	"http.response.body.bytes":    kindInt,
	"url.original":                kindString,
	"url.domain":                  kindString,
	"url.path":                    kindString,
	"user_agent.original":         kindString,
	"cloud.provider":              kindString,
	"cloud.account.id":            kindString,
	"cloud.region":                kindString,
	"observer.name":               kindString,
	"related.ip":                  kindString, // arrays are kept as their JSON text
	"related.user":                kindString,
	"source.address":              kindString,
	"destination.address":         kindString,
	"source.bytes":                kindInt,
	"destination.bytes":           kindInt,
	"network.bytes":               kindInt,
	"network.packets":             kindInt,
	"http.request.referrer":       kindString,
	"tls.version":                 kindString,
	"cloud.instance.id":           kindString,
	"aws.cloudwatch.log_group":    kindString,
	"aws.cloudwatch.log_stream":   kindString,
	"user.id":                     kindString,
	"source.geo.country_iso_code": kindString,
}

// datasetColumns are extra typed columns of the built-in datasets.
var datasetColumns = map[string]map[string]colKind{
	"aws.cloudtrail": {
		"aws.cloudtrail.event_type":                   kindString,
		"aws.cloudtrail.event_category":               kindString,
		"aws.cloudtrail.error_code":                   kindString,
		"aws.cloudtrail.error_message":                kindString,
		"aws.cloudtrail.recipient_account_id":         kindString,
		"aws.cloudtrail.request_id":                   kindString,
		"aws.cloudtrail.read_only":                    kindBool,
		"aws.cloudtrail.management_event":             kindBool,
		"aws.cloudtrail.user_identity.type":           kindString,
		"aws.cloudtrail.user_identity.arn":            kindString,
		"aws.cloudtrail.user_identity.access_key_id":  kindString,
		"aws.cloudtrail.flattened.request_parameters": kindString,
		"aws.cloudtrail.flattened.response_elements":  kindString,
	},
	"aws.vpcflow": {
		"aws.vpcflow.action":       kindString,
		"aws.vpcflow.log_status":   kindString,
		"aws.vpcflow.interface_id": kindString,
		"aws.vpcflow.vpc_id":       kindString,
		"aws.vpcflow.subnet_id":    kindString,
		"aws.vpcflow.instance_id":  kindString,
		"aws.vpcflow.tcp_flags":    kindString,
	},
	"aws.alb": {
		"aws.elb.name":                              kindString,
		"aws.elb.type":                              kindString,
		"aws.elb.target_group.arn":                  kindString,
		"aws.elb.backend.ip":                        kindString,
		"aws.elb.backend.port":                      kindInt,
		"aws.elb.backend.http.response.status_code": kindInt,
		"aws.elb.trace_id":                          kindString,
		"aws.elb.ssl_protocol":                      kindString,
		"aws.elb.action_executed":                   kindString,
	},
	"aws.cloudfront": {
		"aws.cloudfront.edge_location":      kindString,
		"aws.cloudfront.edge_result_type":   kindString,
		"aws.cloudfront.time_to_first_byte": kindString,
	},
}

// pqColumn is one leaf of the schema, in the schema's column order.
type pqColumn struct {
	path *fieldPath // nil for the doc column
	kind colKind
}

// pqSchema is the schema of one dataset's objects.
type pqSchema struct {
	schema  *parquet.Schema
	columns []pqColumn
}

// buildSchema builds the dataset's schema: nested required groups following the ECS
// hierarchy, optional typed leaves, and the doc column.
func buildSchema(dataset string) *pqSchema {
	kinds := map[string]colKind{}
	for p, k := range commonColumns {
		kinds[p] = k
	}
	for p, k := range datasetColumns[dataset] {
		kinds[p] = k
	}
	root := parquet.Group{docColumn: parquet.String()}
	for p, k := range kinds {
		segs := strings.Split(p, ".")
		g := root
		for _, seg := range segs[:len(segs)-1] {
			sub, ok := g[seg].(parquet.Group)
			if !ok {
				sub = parquet.Group{}
				g[seg] = sub
			}
			g = sub
		}
		g[segs[len(segs)-1]] = parquet.Optional(leafNode(k))
	}
	schema := parquet.NewSchema("ecs", root)
	ps := &pqSchema{schema: schema}
	for _, path := range schema.Columns() {
		joined := strings.Join(path, ".")
		if joined == docColumn {
			ps.columns = append(ps.columns, pqColumn{})
			continue
		}
		fp := newFieldPath(path)
		ps.columns = append(ps.columns, pqColumn{path: &fp, kind: kinds[joined]})
	}
	return ps
}

func leafNode(k colKind) parquet.Node {
	switch k {
	case kindInt:
		return parquet.Int(64)
	case kindTimestamp:
		return parquet.Timestamp(parquet.Nanosecond)
	case kindBool:
		return parquet.Leaf(parquet.BooleanType)
	default:
		return parquet.String()
	}
}

// parquetEncoder writes one Parquet file in memory. Each document is decoded into a
// map to pick its typed values out: Parquet objects are analytics copies, not the
// hot path (see BenchmarkSinkParquet).
type parquetEncoder struct {
	ps   *pqSchema
	buf  bytes.Buffer
	w    *parquet.Writer
	rows []parquet.Row
}

func newParquetEncoder(dataset, compression string) (*parquetEncoder, error) {
	var codec compress.Codec
	switch compression {
	case "zstd":
		codec = &parquet.Zstd
	case "snappy":
		codec = &parquet.Snappy
	case "gzip":
		codec = &parquet.Gzip
	case "none":
		codec = &parquet.Uncompressed
	default:
		return nil, fmt.Errorf("parquet: unknown compression %q", compression)
	}
	e := &parquetEncoder{ps: buildSchema(dataset)}
	e.w = parquet.NewWriter(&e.buf, e.ps.schema, parquet.Compression(codec),
		parquet.CreatedBy("vigil", "", ""))
	return e, nil
}

func (e *parquetEncoder) write(docs []byte) error {
	e.rows = e.rows[:0]
	for len(docs) > 0 {
		line := docs
		if i := bytes.IndexByte(docs, '\n'); i >= 0 {
			line, docs = docs[:i], docs[i+1:]
		} else {
			docs = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		e.rows = append(e.rows, e.row(line))
	}
	_, err := e.w.WriteRows(e.rows)
	return err
}

// row builds one row: typed values found in the document, nulls elsewhere. A
// document that is not a JSON object (never produced by processing) keeps only its
// doc column.
func (e *parquetEncoder) row(line []byte) parquet.Row {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if dec.Decode(&doc) != nil {
		doc = nil
	}
	row := make(parquet.Row, len(e.ps.columns))
	for i, c := range e.ps.columns {
		if c.path == nil {
			row[i] = parquet.ByteArrayValue(line).Level(0, 0, i)
			continue
		}
		var found any
		if doc != nil {
			found = lookupPath(doc, c.path, 0)
		}
		v, ok := typed(found, c.kind)
		if !ok {
			row[i] = parquet.NullValue().Level(0, 0, i)
			continue
		}
		row[i] = v.Level(0, 1, i)
	}
	return row
}

// fieldPath is a dotted field name with the offsets of its segments, so that any
// run of segments is a substring (no allocation per lookup).
type fieldPath struct {
	dotted string
	starts []int // start of each segment
	ends   []int // end of each segment
}

func newFieldPath(segs []string) fieldPath {
	p := fieldPath{dotted: strings.Join(segs, ".")}
	off := 0
	for _, s := range segs {
		p.starts = append(p.starts, off)
		p.ends = append(p.ends, off+len(s))
		off += len(s) + 1
	}
	return p
}

// lookupPath finds a field in a decoded document, whether nested ({"a":{"b":1}}) or
// dotted ({"a.b":1}). An object where a scalar was expected yields its "value"
// member, the event encoder's way of keeping both.
func lookupPath(m map[string]any, p *fieldPath, from int) any {
	n := len(p.starts)
	for i := from; i < n; i++ {
		v, ok := m[p.dotted[p.starts[from]:p.ends[i]]]
		if !ok {
			continue
		}
		sub, isMap := v.(map[string]any)
		if i == n-1 {
			if isMap {
				return sub["value"]
			}
			return v
		}
		if isMap {
			if found := lookupPath(sub, p, i+1); found != nil {
				return found
			}
		}
	}
	return nil
}

// typed converts a JSON value to a column's type; values that do not convert are
// left null (the doc column still holds them).
func typed(v any, k colKind) (parquet.Value, bool) {
	switch k {
	case kindString:
		switch x := v.(type) {
		case string:
			return parquet.ByteArrayValue([]byte(x)), true
		case json.Number:
			return parquet.ByteArrayValue([]byte(x)), true
		case bool:
			return parquet.ByteArrayValue([]byte(strconv.FormatBool(x))), true
		case []any, map[string]any:
			b, err := json.Marshal(x)
			if err != nil {
				return parquet.Value{}, false
			}
			return parquet.ByteArrayValue(b), true
		}
	case kindInt:
		var s string
		switch x := v.(type) {
		case json.Number:
			s = string(x)
		case string:
			s = x
		default:
			return parquet.Value{}, false
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return parquet.Int64Value(n), true
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && f == float64(int64(f)) {
			return parquet.Int64Value(int64(f)), true
		}
	case kindTimestamp:
		if s, ok := v.(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return parquet.Int64Value(t.UnixNano()), true
			}
		}
	case kindBool:
		switch x := v.(type) {
		case bool:
			return parquet.BooleanValue(x), true
		case string:
			if b, err := strconv.ParseBool(x); err == nil {
				return parquet.BooleanValue(b), true
			}
		}
	}
	return parquet.Value{}, false
}

func (e *parquetEncoder) finish() ([]byte, error) {
	if err := e.w.Close(); err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return e.buf.Bytes(), nil
}

func (e *parquetEncoder) ext() string         { return ".parquet" }
func (e *parquetEncoder) contentType() string { return "application/vnd.apache.parquet" }
