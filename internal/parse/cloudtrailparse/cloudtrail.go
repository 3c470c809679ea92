// Package cloudtrailparse parses AWS CloudTrail log files and records into ECS events
// named the way Elastic's AWS integration names them (aws.cloudtrail.*, user.*,
// source.*, cloud.*, event.*).
//
// A record is a whole CloudTrail log file, {"Records":[…]}, gzip-compressed or not, a
// JSON array of CloudTrail records, or one CloudTrail record object (as CloudTrail
// writes to CloudWatch Logs or EventBridge delivers it). Digest files are recognised and
// skipped. Each CloudTrail record becomes one event whose event.original is that
// record's own JSON text.
package cloudtrailparse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/klauspost/compress/gzip"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/jsonscan"
)

// Dataset is the event.dataset of CloudTrail events.
const Dataset = "aws.cloudtrail"

// maxFlattened is the size from which Elastic's pipeline stops copying a nested object
// into aws.cloudtrail.flattened.* (Lucene's term limit is 32766 bytes), keeping only
// the string form.
const maxFlattened = 32766

// Format returns the cloudtrail format.
func Format() parse.Format {
	return parse.Format{
		Name:        "cloudtrail",
		WholeRecord: true,
		Dataset:     Dataset,
		NewConfig:   func() parse.Config { return NewConfig() },
		New: func(c parse.Config) (parse.Parser, error) {
			cfg, ok := c.(*Config)
			if !ok {
				return nil, fmt.Errorf("cloudtrail: config is %T, want *cloudtrailparse.Config", c)
			}
			return New(cfg), nil
		},
	}
}

// New returns a CloudTrail parser using cfg, which must have passed Validate.
func New(cfg *Config) *Parser {
	return &Parser{maxBytes: cfg.MaxDecompressedBytes}
}

// Parser is the CloudTrail parser. It reuses its buffers between records and is not
// safe for concurrent use.
type Parser struct {
	maxBytes int64
	br       bytes.Reader
	gz       *gzip.Reader
	buf      []byte // the decompressed record

	rec   record
	ev    event.Event
	arena []byte   // decoded strings and compacted JSON of the current event
	users [][]byte // related.user being collected
	ents  [][]byte // related.entity being collected
}

var _ parse.Parser = (*Parser)(nil)

// jstr is a JSON scalar seen in a record: a string's body (escaped when esc) or a
// number's or boolean's text. A nil b means absent, null or empty.
type jstr struct {
	b   []byte
	esc bool
}

// record holds what one CloudTrail record says, as slices of the input.
type record struct {
	eventVersion, eventTime, eventSource, eventName, awsRegion, sourceIP, userAgent jstr
	errorCode, errorMessage, requestID, eventID, eventType, apiVersion              jstr
	recipientAccountID, sharedEventID, vpcEndpointID, eventCategory, fromConsole    jstr
	managementEvent, readOnly                                                       jstr

	// Nested values kept whole (their extent in the input).
	requestParameters, responseElements, additionalEventData []byte
	serviceEventDetails, insightDetails, resources           []byte

	// userIdentity
	uiType, uiPrincipalID, uiARN, uiAccountID, uiAccessKeyID, uiUserName jstr
	uiInvokedBy, uiIdentityProvider, uiUserID, uiIdentityStoreARN        jstr
	mfaAuthenticated, creationDate                                       jstr
	siType, siPrincipalID, siARN, siAccountID, siUserName                jstr
	federatedProvider                                                    jstr

	tlsVersion, tlsCipher, tlsHost jstr

	// Picked from inside requestParameters / responseElements / additionalEventData.
	rpUserName, rpNewUserName, rpGroupName jstr
	reConsoleLogin, reUserID, reGroupID    jstr
	aeMobileVersion, aeLoginTo, aeMFAUsed  jstr

	digest bool // a digest file's key was seen
}

// Parse implements parse.Parser.
func (p *Parser) Parse(rec []byte, out parse.Emitter) error {
	data := rec
	if len(rec) >= 2 && rec[0] == 0x1f && rec[1] == 0x8b {
		var err error
		if data, err = p.gunzip(rec); err != nil {
			return err
		}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	s := jsonscan.Scanner{Data: data}
	switch c := s.Peek(); c {
	case '{':
		return p.parseObject(&s, out)
	case '[':
		s.Pos++
		if err := p.parseEntries(&s, out, "["); err != nil {
			return entriesError(err)
		}
		return p.checkEnd(&s)
	case 0:
		return errors.New("cloudtrail: empty record")
	default:
		return fmt.Errorf("cloudtrail: byte offset %d: expected a JSON object ({\"Records\":[…]} or a CloudTrail record), got %q", s.Pos, c)
	}
}

func (p *Parser) gunzip(rec []byte) ([]byte, error) {
	p.br.Reset(rec)
	var err error
	if p.gz == nil {
		p.gz, err = gzip.NewReader(&p.br)
	} else {
		err = p.gz.Reset(&p.br)
	}
	if err != nil {
		return nil, fmt.Errorf("cloudtrail: gzip header: %w", err)
	}
	buf := p.buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(64<<10, len(buf)))
		}
		// Read at most one byte past the limit, enough to tell that it was crossed.
		limit := min(int64(cap(buf)), p.maxBytes+1)
		n, err := p.gz.Read(buf[len(buf):limit])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > p.maxBytes {
			p.buf = buf[:0]
			return nil, fmt.Errorf("cloudtrail: gzip: decompressed size exceeds max_decompressed_bytes (%d bytes)", p.maxBytes)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			p.buf = buf[:0]
			return nil, fmt.Errorf("cloudtrail: gzip: after %d decompressed bytes: %w", len(buf), err)
		}
	}
	p.buf = buf
	return buf, nil
}

// parseObject handles a top-level object: a log file, a digest file or one record.
func (p *Parser) parseObject(s *jsonscan.Scanner, out parse.Emitter) error {
	start := s.Pos
	atRecords, err := p.collect(s, true)
	if err != nil {
		return fmt.Errorf("cloudtrail: %w", err)
	}
	if !atRecords {
		if err := p.checkEnd(s); err != nil {
			return err
		}
		switch {
		case p.rec.eventTime.b != nil || p.rec.eventID.b != nil || p.rec.eventVersion.b != nil:
			bad, failed := p.emit(s.Data[start:s.Pos], out)
			if bad != nil {
				return fmt.Errorf("cloudtrail: %w", bad)
			}
			return failed
		case p.rec.digest:
			out.Skip("cloudtrail_digest")
			return nil
		}
		return errors.New("cloudtrail: JSON object has neither a Records array nor eventTime: not a CloudTrail log file or record")
	}
	// A log file: collect stopped at the value of "Records".
	if s.Peek() != '[' {
		return fmt.Errorf("cloudtrail: byte offset %d: Records is not an array", s.Pos)
	}
	s.Pos++
	if err := p.parseEntries(s, out, "Records"); err != nil {
		return entriesError(err)
	}
	// The members after Records carry nothing we use; they must still be valid JSON.
	first := false
	for {
		_, ok, err := s.NextMember(&first)
		if err != nil {
			return fmt.Errorf("cloudtrail: %w", err)
		}
		if !ok {
			break
		}
		if _, _, err := s.SkipValue(1); err != nil {
			return fmt.Errorf("cloudtrail: %w", err)
		}
	}
	return p.checkEnd(s)
}

func (p *Parser) checkEnd(s *jsonscan.Scanner) error {
	if c := s.Peek(); c != 0 {
		return fmt.Errorf("cloudtrail: byte offset %d: unexpected %q after the JSON value", s.Pos, c)
	}
	return nil
}

// emitFailed carries an emitter's error out of parseEntries so that Parse can return it
// unchanged, as the Emitter contract asks.
type emitFailed struct{ err error }

func (e emitFailed) Error() string { return e.err.Error() }

func entriesError(err error) error {
	var ef emitFailed
	if errors.As(err, &ef) {
		return ef.err
	}
	return fmt.Errorf("cloudtrail: %w", err)
}

// parseEntries walks the elements of a records array whose '[' was consumed. An element
// that is not an object, or has no usable eventTime, is rejected alone; a JSON syntax
// error ends the record, since nothing after it can be trusted.
func (p *Parser) parseEntries(s *jsonscan.Scanner, out parse.Emitter, what string) error {
	first := true
	for i := 0; ; i++ {
		ok, err := s.NextElement(&first)
		if err != nil {
			return fmt.Errorf("%s[%d]: %w", what, i, err)
		}
		if !ok {
			return nil
		}
		if s.Peek() != '{' {
			start, end, err := s.SkipValue(1)
			if err != nil {
				return fmt.Errorf("%s[%d]: %w", what, i, err)
			}
			out.Reject(s.Data[start:end], fmt.Errorf("cloudtrail: %s[%d]: not a JSON object", what, i))
			continue
		}
		start := s.Pos
		if _, err := p.collect(s, false); err != nil {
			return fmt.Errorf("%s[%d]: %w", what, i, err)
		}
		entry := s.Data[start:s.Pos]
		bad, failed := p.emit(entry, out)
		if failed != nil {
			return emitFailed{failed}
		}
		if bad != nil {
			out.Reject(entry, fmt.Errorf("cloudtrail: %s[%d]: %w", what, i, bad))
		}
	}
}

// scalar reads a scalar value into dst: strings keep their body, numbers and booleans
// their text; null, "" and nested values leave dst unset.
func scalar(s *jsonscan.Scanner, dst *jstr) error {
	switch s.Peek() {
	case '"':
		b, esc, err := s.ReadString()
		if err != nil {
			return err
		}
		if len(b) > 0 {
			*dst = jstr{b: b, esc: esc}
		}
		return nil
	case 'n', '{', '[':
		_, _, err := s.SkipValue(1)
		return err
	}
	start, end, err := s.SkipValue(1)
	if err == nil {
		*dst = jstr{b: s.Data[start:end]}
	}
	return err
}

// extent consumes a value and stores its bytes in dst unless it is null.
func extent(s *jsonscan.Scanner, dst *[]byte) error {
	start, end, err := s.SkipValue(2)
	if err == nil && !(end-start == 4 && s.Data[start] == 'n') {
		*dst = s.Data[start:end]
	}
	return err
}

// collect reads one record object into p.rec. With stopAtRecords it returns true as
// soon as it meets a "Records" member, leaving the scanner at its value.
func (p *Parser) collect(s *jsonscan.Scanner, stopAtRecords bool) (atRecords bool, err error) {
	r := &p.rec
	*r = record{}
	if err := s.Expect('{'); err != nil {
		return false, err
	}
	first := true
	for {
		key, ok, err := s.NextMember(&first)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, nil
		}
		switch string(key) {
		case "eventVersion":
			err = scalar(s, &r.eventVersion)
		case "eventTime":
			err = scalar(s, &r.eventTime)
		case "eventSource":
			err = scalar(s, &r.eventSource)
		case "eventName":
			err = scalar(s, &r.eventName)
		case "awsRegion":
			err = scalar(s, &r.awsRegion)
		case "sourceIPAddress":
			err = scalar(s, &r.sourceIP)
		case "userAgent":
			err = scalar(s, &r.userAgent)
		case "errorCode":
			err = scalar(s, &r.errorCode)
		case "errorMessage":
			err = scalar(s, &r.errorMessage)
		case "requestID":
			err = scalar(s, &r.requestID)
		case "eventID":
			err = scalar(s, &r.eventID)
		case "eventType":
			err = scalar(s, &r.eventType)
		case "apiVersion":
			err = scalar(s, &r.apiVersion)
		case "recipientAccountId":
			err = scalar(s, &r.recipientAccountID)
		case "sharedEventID", "sharedEventId":
			err = scalar(s, &r.sharedEventID)
		case "vpcEndpointId":
			err = scalar(s, &r.vpcEndpointID)
		case "eventCategory":
			err = scalar(s, &r.eventCategory)
		case "sessionCredentialFromConsole":
			err = scalar(s, &r.fromConsole)
		case "managementEvent":
			err = scalar(s, &r.managementEvent)
		case "readOnly":
			err = scalar(s, &r.readOnly)
		case "userIdentity":
			err = p.collectIdentity(s)
		case "requestParameters":
			err = p.collectNested(s, &r.requestParameters, func(k []byte) error {
				switch string(k) {
				case "userName":
					return scalar(s, &r.rpUserName)
				case "newUserName":
					return scalar(s, &r.rpNewUserName)
				case "groupName":
					return scalar(s, &r.rpGroupName)
				}
				return s.Skip(3)
			})
		case "responseElements":
			err = p.collectNested(s, &r.responseElements, func(k []byte) error {
				switch string(k) {
				case "ConsoleLogin":
					return scalar(s, &r.reConsoleLogin)
				case "user":
					return s.Members(3, func(k []byte) error {
						if string(k) == "userId" {
							return scalar(s, &r.reUserID)
						}
						return s.Skip(4)
					})
				case "group":
					return s.Members(3, func(k []byte) error {
						if string(k) == "groupId" {
							return scalar(s, &r.reGroupID)
						}
						return s.Skip(4)
					})
				}
				return s.Skip(3)
			})
		case "additionalEventData":
			err = p.collectNested(s, &r.additionalEventData, func(k []byte) error {
				switch string(k) {
				case "MobileVersion":
					return scalar(s, &r.aeMobileVersion)
				case "LoginTo":
					return scalar(s, &r.aeLoginTo)
				case "MFAUsed":
					return scalar(s, &r.aeMFAUsed)
				}
				return s.Skip(3)
			})
		case "serviceEventDetails":
			err = extent(s, &r.serviceEventDetails)
		case "insightDetails":
			err = extent(s, &r.insightDetails)
		case "resources":
			err = extent(s, &r.resources)
		case "tlsDetails":
			err = s.Members(2, func(k []byte) error {
				switch string(k) {
				case "tlsVersion":
					return scalar(s, &r.tlsVersion)
				case "cipherSuite":
					return scalar(s, &r.tlsCipher)
				case "clientProvidedHostHeader":
					return scalar(s, &r.tlsHost)
				}
				return s.Skip(3)
			})
		case "Records":
			if stopAtRecords {
				return true, nil
			}
			err = s.Skip(1)
		case "digestStartTime", "digestEndTime", "digestPublicKeyFingerprint", "digestSignatureAlgorithm", "digestS3Object":
			r.digest = true
			err = s.Skip(1)
		default:
			err = s.Skip(1)
		}
		if err != nil {
			return false, err
		}
	}
}

// collectNested keeps the extent of an object-valued member and lets fn pick members
// out of it on the way.
func (p *Parser) collectNested(s *jsonscan.Scanner, dst *[]byte, fn func(key []byte) error) error {
	if s.Peek() != '{' {
		return extent(s, dst)
	}
	start := s.Pos
	if err := s.Members(2, fn); err != nil {
		return err
	}
	*dst = s.Data[start:s.Pos]
	return nil
}

func (p *Parser) collectIdentity(s *jsonscan.Scanner) error {
	r := &p.rec
	return s.Members(1, func(k []byte) error {
		switch string(k) {
		case "type":
			return scalar(s, &r.uiType)
		case "principalId":
			return scalar(s, &r.uiPrincipalID)
		case "arn":
			return scalar(s, &r.uiARN)
		case "accountId":
			return scalar(s, &r.uiAccountID)
		case "accessKeyId":
			return scalar(s, &r.uiAccessKeyID)
		case "userName":
			return scalar(s, &r.uiUserName)
		case "invokedBy":
			return scalar(s, &r.uiInvokedBy)
		case "identityProvider":
			return scalar(s, &r.uiIdentityProvider)
		case "userId":
			return scalar(s, &r.uiUserID)
		case "identityStoreArn":
			return scalar(s, &r.uiIdentityStoreARN)
		case "sessionContext":
			return s.Members(2, func(k []byte) error {
				switch string(k) {
				case "attributes":
					return s.Members(3, func(k []byte) error {
						switch string(k) {
						case "mfaAuthenticated":
							return scalar(s, &r.mfaAuthenticated)
						case "creationDate":
							return scalar(s, &r.creationDate)
						}
						return s.Skip(4)
					})
				case "sessionIssuer":
					return s.Members(3, func(k []byte) error {
						switch string(k) {
						case "type":
							return scalar(s, &r.siType)
						case "principalId":
							return scalar(s, &r.siPrincipalID)
						case "arn":
							return scalar(s, &r.siARN)
						case "accountId":
							return scalar(s, &r.siAccountID)
						case "userName":
							return scalar(s, &r.siUserName)
						}
						return s.Skip(4)
					})
				case "webIdFederationData":
					return s.Members(3, func(k []byte) error {
						if string(k) == "federatedProvider" {
							return scalar(s, &r.federatedProvider)
						}
						return s.Skip(4)
					})
				}
				return s.Skip(3)
			})
		}
		return s.Skip(2)
	})
}
