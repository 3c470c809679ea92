package s3source

import (
	"fmt"
	"regexp"
	"strings"
)

// BuiltinKeyRules are where AWS services deliver their logs, tried after the
// configured rules. The CloudTrail digest rule comes before nothing it could shadow:
// digests live under CloudTrail-Digest/, a segment of their own.
var BuiltinKeyRules = []KeyRule{
	{Match: "**/AWSLogs/*/elasticloadbalancing/**", Format: "alb"},
	{Match: "**/AWSLogs/*/CloudTrail-Digest/**", Format: FormatSkip},
	{Match: "**/AWSLogs/*/CloudTrail/**", Format: "cloudtrail"},
	{Match: "**/AWSLogs/*/vpcflowlogs/**", Format: "vpcflow"},
	// CloudFront standard logs: <distribution-id>.YYYY-MM-DD-HH.<unique-id>.gz.
	{Match: "**/*.????-??-??-??.*.gz", Format: "cloudfront"},
}

type rule struct {
	KeyRule
	re *regexp.Regexp
}

// rules is an ordered list of compiled key rules.
type rules []rule

func compileRules(configured []KeyRule, builtin bool) (rules, error) {
	all := append([]KeyRule(nil), configured...)
	if builtin {
		all = append(all, BuiltinKeyRules...)
	}
	out := make(rules, 0, len(all))
	for _, r := range all {
		re, err := compileGlob(r.Match)
		if err != nil {
			return nil, fmt.Errorf("key rule %q: %w", r.Match, err)
		}
		out = append(out, rule{KeyRule: r, re: re})
	}
	return out, nil
}

// match returns the format of the first rule matching key, and whether one did.
func (rs rules) match(key string) (string, bool) {
	for _, r := range rs {
		if r.re.MatchString(key) {
			return r.Format, true
		}
	}
	return "", false
}

// compileGlob turns a key glob into an anchored regular expression: * is any run of
// characters but '/', ? one character but '/', ** any run of characters, and **/ any
// number of whole segments, none included.
func compileGlob(glob string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(glob); {
		switch {
		case strings.HasPrefix(glob[i:], "**/"):
			b.WriteString("(?:.*/)?")
			i += 3
		case strings.HasPrefix(glob[i:], "**"):
			b.WriteString(".*")
			i += 2
		case glob[i] == '*':
			b.WriteString("[^/]*")
			i++
		case glob[i] == '?':
			b.WriteString("[^/]")
			i++
		default:
			j := i
			for j < len(glob) && glob[j] != '*' && glob[j] != '?' {
				j++
			}
			b.WriteString(regexp.QuoteMeta(glob[i:j]))
			i = j
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}
