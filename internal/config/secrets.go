package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
)

// substitute replaces ${VAR} (environment) and ${file:/path} (file content, trailing
// newline trimmed) in every string of the config, after decoding, so that YAML errors
// and positions refer to the file as written and never show a secret. "$${" stands
// for a literal "${".
func (l *loader) substitute(cfg *Config) {
	l.walk(reflect.ValueOf(cfg).Elem(), "")
	for _, s := range cfg.Sources {
		p := "sources." + s.Name
		if s.Settings != nil {
			l.walk(reflect.ValueOf(s.Settings), p)
		}
		if s.FormatOptions != nil {
			l.walk(reflect.ValueOf(s.FormatOptions), p+".format_options")
		}
		s.Dataset = l.expand(s.Dataset, p+".dataset")
		s.Format = l.expand(s.Format, p+".format")
	}
	for i, pc := range cfg.Processing.Processors {
		if pc.Settings != nil {
			l.walk(reflect.ValueOf(pc.Settings), fmt.Sprintf("processing.processors[%d]", i))
		}
	}
	for _, s := range cfg.Sinks {
		p := "sinks." + s.Name
		if s.Settings != nil {
			l.walk(reflect.ValueOf(s.Settings), p)
		}
		for i := range s.Inputs {
			s.Inputs[i] = l.expand(s.Inputs[i], p+".inputs")
		}
	}
}

func (l *loader) walk(v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			l.walk(v.Elem(), path)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			p := path
			if name != "" {
				if p != "" {
					p += "."
				}
				p += name
			}
			l.walk(v.Field(i), p)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			l.walk(v.Index(i), path)
		}
	case reflect.Map:
		if v.Type().Elem().Kind() == reflect.String {
			for _, k := range v.MapKeys() {
				s := v.MapIndex(k).String()
				v.SetMapIndex(k, reflect.ValueOf(l.expand(s, path+"."+k.String())).Convert(v.Type().Elem()))
			}
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString(l.expand(v.String(), path))
		}
	}
}

// expand substitutes one string, recording a problem for an unset variable or an
// unreadable file (without ever echoing a value).
func (l *loader) expand(s, path string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			l.addAt(path, "unclosed ${ … }")
			return ""
		}
		ref := s[i+2 : i+end]
		s = s[i+end+1:]
		val, err := resolve(ref)
		if err != nil {
			l.addAt(path, "%v", err)
			continue
		}
		b.WriteString(val)
	}
}

func resolve(ref string) (string, error) {
	if file, ok := strings.CutPrefix(ref, "file:"); ok {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("${file:%s}: cannot read the secret file: %v", file, unwrapPathError(err))
		}
		return strings.TrimRight(string(data), "\r\n"), nil
	}
	if ref == "" {
		return "", fmt.Errorf("empty ${}")
	}
	name, def, hasDefault := strings.Cut(ref, ":-")
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v, nil
	}
	if hasDefault {
		return def, nil
	}
	return "", fmt.Errorf("environment variable %s is not set (use ${%s:-default} for a default)", name, name)
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// Redacted returns a copy of s with every field tagged `secret:"true"` replaced by
// "<redacted>" when set, for logs and config dumps.
func Redacted[T any](s T) T {
	v := reflect.ValueOf(&s).Elem()
	redact(v)
	return s
}

func redact(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := v.Field(i)
			if !t.Field(i).IsExported() {
				continue
			}
			if t.Field(i).Tag.Get("secret") == "true" {
				switch f.Kind() {
				case reflect.String:
					if f.String() != "" {
						f.SetString("<redacted>")
					}
				case reflect.Slice:
					if f.Type().Elem().Kind() == reflect.String {
						n := reflect.MakeSlice(f.Type(), f.Len(), f.Len())
						for j := 0; j < f.Len(); j++ {
							n.Index(j).SetString("<redacted>")
						}
						f.Set(n)
					}
				}
				continue
			}
			redact(f)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			cp := reflect.New(v.Elem().Type())
			cp.Elem().Set(v.Elem())
			redact(cp.Elem())
			v.Set(cp)
		}
	case reflect.Interface:
		// A component's typed config (Source.Settings) sits behind an interface.
		if !v.IsNil() {
			cp := reflect.New(v.Elem().Type()).Elem()
			cp.Set(v.Elem())
			redact(cp)
			v.Set(cp)
		}
	case reflect.Slice:
		// Config.Sources and Config.Sinks: copy the slice so that redacting its
		// elements never touches the caller's.
		switch v.Type().Elem().Kind() {
		case reflect.Struct, reflect.Pointer, reflect.Interface, reflect.Slice, reflect.Array:
			if !v.IsNil() {
				cp := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
				reflect.Copy(cp, v)
				for i := 0; i < cp.Len(); i++ {
					redact(cp.Index(i))
				}
				v.Set(cp)
			}
		}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			redact(v.Index(i))
		}
	}
}
