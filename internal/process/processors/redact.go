package processors

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
	"unicode/utf8"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/process"
)

// RedactConfig configures redact: it hides the values of personal or secret fields
// before they leave the pipeline.
type RedactConfig struct {
	// Fields are the paths to redact; a path with leaves below it redacts each leaf.
	Fields []string `yaml:"fields"`
	// Mode is hash (keyed HMAC-SHA256 in hex: the same value and key always give
	// the same hash, so events can still be joined on it), mask (every character
	// replaced by mask_char) or remove.
	Mode string `yaml:"mode"`
	// Key is the HMAC key of mode hash, at least 16 bytes; give it as a secret
	// ("${REDACT_KEY}" or "${file:/run/secrets/redact}").
	Key string `yaml:"key" secret:"true"`
	// MaskChar replaces each character in mode mask.
	MaskChar string `yaml:"mask_char"`
	// KeepLast keeps the last N characters visible in mode mask (a card's last four).
	KeepLast int `yaml:"keep_last"`
}

// Validate implements config.Component.
func (c *RedactConfig) Validate() error {
	var errs []error
	if len(c.Fields) == 0 {
		errs = append(errs, errNoFields)
	}
	for _, f := range c.Fields {
		if err := checkField("fields", f); err != nil {
			errs = append(errs, err)
		} else if err := checkNotProtected("fields", f); err != nil {
			errs = append(errs, err)
		}
	}
	switch c.Mode {
	case "hash":
		if len(c.Key) < 16 {
			errs = append(errs, errors.New("key: mode hash needs a key of at least 16 bytes, given as a secret like \"${REDACT_KEY}\""))
		}
	case "mask":
		if utf8.RuneCountInString(c.MaskChar) != 1 {
			errs = append(errs, fmt.Errorf("mask_char: want one character, got %q", c.MaskChar))
		}
		if c.KeepLast < 0 {
			errs = append(errs, errors.New("keep_last: must not be negative"))
		}
	case "remove":
	default:
		errs = append(errs, fmt.Errorf("mode: want hash, mask or remove, got %q", c.Mode))
	}
	if c.Mode != "hash" && c.Key != "" {
		errs = append(errs, fmt.Errorf("key: only for mode hash (mode is %s)", c.Mode))
	}
	return errors.Join(errs...)
}

type redact struct {
	fields   []string
	mode     string
	mac      hash.Hash
	mask     string
	keepLast int
	sum      []byte
}

func newRedact(c *RedactConfig, _ process.Deps) (process.Processor, error) {
	r := &redact{fields: append([]string(nil), c.Fields...), mode: c.Mode, mask: c.MaskChar, keepLast: c.KeepLast}
	if c.Mode == "hash" {
		r.mac = hmac.New(sha256.New, []byte(c.Key))
	}
	return r, nil
}

func (r *redact) Process(it *process.Item) (process.Verdict, error) {
	e := it.Event
	for _, f := range r.fields {
		if r.mode == "remove" {
			e.Delete(f)
			continue
		}
		// The leaf itself, or every leaf below it; every occurrence of a key a parser
		// added twice (the encoder keeps the last, Set would change the first).
		prefix := f + "."
		for i := range e.Fields {
			if k := e.Fields[i].Key; k == f || strings.HasPrefix(k, prefix) {
				e.Fields[i].Value = r.value(e.Fields[i].Value)
			}
		}
	}
	return process.Pass, nil
}

// value redacts one leaf. Strings are redacted as they are; a list is redacted
// element by element, so related.user stays a list; other values through their
// JSON text. Null stays null.
func (r *redact) value(v event.Value) event.Value {
	switch v.Kind() {
	case event.KindNull:
		return v
	case event.KindString, event.KindBytes:
		return event.String(r.text(v.Str()))
	case event.KindStrings:
		ss, _ := v.AsStrings()
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = r.text(s)
		}
		return event.Strings(out)
	case event.KindRaw:
		// Parsers keep JSON input as it came: a string is still quoted, a list is
		// still a list.
		raw, _ := v.RawJSON()
		var x any
		if json.Unmarshal(raw, &x) != nil {
			return event.String(r.text(string(raw)))
		}
		switch x := x.(type) {
		case nil:
			return v
		case string:
			return event.String(r.text(x))
		case []any:
			out := make([]string, len(x))
			for i, el := range x {
				s, ok := el.(string)
				if !ok {
					b, _ := json.Marshal(el)
					s = string(b)
				}
				out[i] = r.text(s)
			}
			return event.Strings(out)
		}
		return event.String(r.text(string(raw)))
	}
	return event.String(r.text(string(v.AppendJSON(nil))))
}

func (r *redact) text(s string) string {
	if r.mode == "hash" {
		r.mac.Reset()
		r.mac.Write([]byte(s))
		r.sum = r.mac.Sum(r.sum[:0])
		return hex.EncodeToString(r.sum)
	}
	n := utf8.RuneCountInString(s)
	keep := min(r.keepLast, n)
	var b strings.Builder
	b.Grow(len(s))
	for range n - keep {
		b.WriteString(r.mask)
	}
	if keep > 0 {
		rs := []rune(s)
		b.WriteString(string(rs[n-keep:]))
	}
	return b.String()
}
