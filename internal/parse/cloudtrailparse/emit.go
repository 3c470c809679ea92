package cloudtrailparse

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/jsonscan"
)

var rawKindEvent = []byte(`"event"`)

// text returns the decoded text of v, borrowing the input when it holds no escapes.
func (p *Parser) text(v jstr) []byte {
	if !v.esc {
		return v.b
	}
	start := len(p.arena)
	p.arena = jsonscan.AppendUnescaped(p.arena, v.b)
	return p.arena[start:len(p.arena):len(p.arena)]
}

// str sets key to the text of v when v is present.
func (p *Parser) str(key string, v jstr) {
	if v.b != nil {
		p.ev.Add(key, event.Bytes(p.text(v)))
	}
}

// boolOf reads a JSON boolean or a "true"/"false" string.
func boolOf(v jstr) (val, ok bool) {
	switch string(v.b) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// emit turns p.rec, collected from original, into an event and emits it. It returns
// bad for a record that cannot become an event, and the emitter's own error unchanged
// as failed.
func (p *Parser) emit(original []byte, out parse.Emitter) (bad, failed error) {
	r := &p.rec
	if r.eventTime.b == nil {
		return errors.New("missing eventTime"), nil
	}
	t, ok := parseTime(r.eventTime.b)
	if !ok {
		return fmt.Errorf("eventTime %q is not an RFC 3339 timestamp", truncate(r.eventTime.b)), nil
	}
	p.arena = p.arena[:0]
	p.users = p.users[:0]
	p.ents = p.ents[:0]
	e := &p.ev
	e.Reset()
	e.Time = t
	e.Dataset = Dataset
	if r.eventID.b != nil {
		e.ID = string(p.text(r.eventID))
	}
	e.Add("event.original", event.Bytes(original))
	e.Add("event.kind", event.Raw(rawKindEvent))
	p.str("event.action", r.eventName)
	p.str("event.provider", r.eventSource)
	p.str("aws.cloudtrail.event_version", r.eventVersion)
	p.str("aws.cloudtrail.event_type", r.eventType)
	p.str("aws.cloudtrail.event_category", r.eventCategory)
	p.str("aws.cloudtrail.api_version", r.apiVersion)
	p.str("aws.cloudtrail.request_id", r.requestID)
	p.str("aws.cloudtrail.recipient_account_id", r.recipientAccountID)
	p.str("aws.cloudtrail.shared_event_id", r.sharedEventID)
	p.str("aws.cloudtrail.vpc_endpoint_id", r.vpcEndpointID)
	p.str("aws.cloudtrail.error_code", r.errorCode)
	p.str("aws.cloudtrail.error_message", r.errorMessage)
	if v, ok := boolOf(r.managementEvent); ok {
		e.Add("aws.cloudtrail.management_event", event.Bool(v))
	}
	if v, ok := boolOf(r.readOnly); ok {
		e.Add("aws.cloudtrail.read_only", event.Bool(v))
	}
	if v, ok := boolOf(r.fromConsole); ok {
		e.Add("aws.cloudtrail.session_credential_from_console", event.Bool(v))
	}

	e.Add("cloud.provider", event.String("aws"))
	p.str("cloud.region", r.awsRegion)
	// The caller's account, as Elastic has it; events without a caller (Insight
	// events) belong to the account whose trail recorded them.
	if r.uiAccountID.b != nil {
		p.str("cloud.account.id", r.uiAccountID)
	} else {
		p.str("cloud.account.id", r.recipientAccountID)
	}

	if r.sourceIP.b != nil {
		addr := p.text(r.sourceIP)
		e.Add("source.address", event.Bytes(addr))
		if isIP(addr) {
			e.Add("source.ip", event.Bytes(addr))
			start := len(p.arena)
			p.arena = append(p.arena, '[')
			p.arena = event.AppendStringBytes(p.arena, addr)
			p.arena = append(p.arena, ']')
			e.Add("related.ip", event.Raw(p.arena[start:]))
		}
	}
	p.str("user_agent.original", r.userAgent)

	p.identity()
	p.nested()
	p.tls()
	p.resources()
	p.categorize()

	if len(p.users) > 0 {
		e.Add("related.user", event.Raw(p.appendStrings(p.users)))
	}
	if len(p.ents) > 0 {
		// Sorted and unique, so that the field does not depend on key order.
		slices.SortFunc(p.ents, bytes.Compare)
		p.ents = slices.CompactFunc(p.ents, bytes.Equal)
		e.Add("related.entity", event.Raw(p.appendStrings(p.ents)))
	}
	return nil, out.Emit(e)
}

func (p *Parser) appendStrings(list [][]byte) []byte {
	start := len(p.arena)
	p.arena = append(p.arena, '[')
	for i, s := range list {
		if i > 0 {
			p.arena = append(p.arena, ',')
		}
		p.arena = event.AppendStringBytes(p.arena, s)
	}
	p.arena = append(p.arena, ']')
	return p.arena[start:]
}

func (p *Parser) addUser(v jstr) {
	if v.b == nil {
		return
	}
	t := p.text(v)
	for _, u := range p.users {
		if bytes.Equal(u, t) {
			return
		}
	}
	p.users = append(p.users, t)
}

func (p *Parser) addEntity(v jstr) {
	if v.b != nil {
		p.ents = append(p.ents, p.text(v))
	}
}

func (p *Parser) identity() {
	r, e := &p.rec, &p.ev
	p.str("aws.cloudtrail.user_identity.type", r.uiType)
	p.str("aws.cloudtrail.user_identity.arn", r.uiARN)
	p.str("aws.cloudtrail.user_identity.access_key_id", r.uiAccessKeyID)
	p.str("aws.cloudtrail.user_identity.invoked_by", r.uiInvokedBy)
	p.str("aws.cloudtrail.user_identity.identity_provider", r.uiIdentityProvider)
	p.str("aws.cloudtrail.user_identity.identity_store_arn", r.uiIdentityStoreARN)
	p.str("aws.cloudtrail.user_identity.session_context.mfa_authenticated", r.mfaAuthenticated)
	// Elastic maps this as a date and drops values it cannot read (older records
	// carry "20131102T010628Z"); a string there would make the document unindexable.
	if r.creationDate.b != nil {
		if t, ok := parseTime(r.creationDate.b); ok {
			e.Add("aws.cloudtrail.user_identity.session_context.creation_date", event.Time(t))
		}
	}
	p.str("aws.cloudtrail.user_identity.session_context.session_issuer.type", r.siType)
	p.str("aws.cloudtrail.user_identity.session_context.session_issuer.principal_id", r.siPrincipalID)
	p.str("aws.cloudtrail.user_identity.session_context.session_issuer.arn", r.siARN)
	p.str("aws.cloudtrail.user_identity.session_context.session_issuer.account_id", r.siAccountID)

	// user.id is the principal; IAM Identity Center users have a userId instead.
	if r.uiPrincipalID.b != nil {
		p.str("user.id", r.uiPrincipalID)
	} else {
		p.str("user.id", r.uiUserID)
	}
	// For assumed roles the role (session issuer) is the user, as in Elastic's pipeline.
	if r.siUserName.b != nil {
		p.str("user.name", r.siUserName)
	} else {
		p.str("user.name", r.uiUserName)
	}
	p.addUser(r.uiUserName)
	p.addUser(r.rpUserName)
	p.addUser(r.rpNewUserName)

	p.addEntity(r.uiARN)
	p.addEntity(r.uiIdentityProvider)
	p.addEntity(r.uiPrincipalID)
	p.addEntity(r.siARN)
	p.addEntity(r.siUserName)
	p.addEntity(r.federatedProvider)
	p.addEntity(r.uiUserName)

	p.str("user.target.name", r.rpUserName)
	p.str("user.target.id", r.reUserID)
	p.str("user.changes.name", r.rpNewUserName)
	p.str("group.name", r.rpGroupName)
	p.str("group.id", r.reGroupID)
}

// nested writes requestParameters, responseElements, additionalEventData,
// serviceEventDetails and insightDetails: as compact JSON text under their Elastic
// names, and as objects under aws.cloudtrail.flattened.*.
func (p *Parser) nested() {
	r := &p.rec
	p.both("aws.cloudtrail.request_parameters", "aws.cloudtrail.flattened.request_parameters", r.requestParameters)
	p.both("aws.cloudtrail.response_elements", "aws.cloudtrail.flattened.response_elements", r.responseElements)
	p.both("aws.cloudtrail.additional_eventdata", "aws.cloudtrail.flattened.additional_eventdata", r.additionalEventData)
	p.both("aws.cloudtrail.service_event_details", "aws.cloudtrail.flattened.service_event_details", r.serviceEventDetails)
	if c := p.compact(r.insightDetails); c != nil && c[0] == '{' {
		p.ev.Add("aws.cloudtrail.flattened.insight_details", event.Raw(c))
	}

	if r.eventName.b != nil && string(r.eventName.b) == "ConsoleLogin" {
		if r.aeMobileVersion.b != nil {
			p.ev.Add("aws.cloudtrail.console_login.additional_eventdata.mobile_version",
				event.Bool(string(r.aeMobileVersion.b) != "No"))
		}
		p.str("aws.cloudtrail.console_login.additional_eventdata.login_to", r.aeLoginTo)
		if r.aeMFAUsed.b != nil {
			p.ev.Add("aws.cloudtrail.console_login.additional_eventdata.mfa_used",
				event.Bool(string(r.aeMFAUsed.b) != "No"))
		}
	}
}

// compact returns v without insignificant whitespace, or nil when v is absent or an
// empty object or array (Elastic's pipeline drops empty values).
func (p *Parser) compact(v []byte) []byte {
	if v == nil {
		return nil
	}
	start := len(p.arena)
	p.arena = jsonscan.AppendCompact(p.arena, v)
	c := p.arena[start:len(p.arena):len(p.arena)]
	if len(c) <= 2 && (c[0] == '{' || c[0] == '[') {
		return nil
	}
	return c
}

func (p *Parser) both(key, flatKey string, v []byte) {
	if v == nil {
		return
	}
	if v[0] == '"' {
		// A string where an object is expected: keep its text only.
		body := v[1 : len(v)-1]
		if len(body) > 0 {
			p.ev.Add(key, event.Bytes(p.text(jstr{b: body, esc: bytes.IndexByte(body, '\\') >= 0})))
		}
		return
	}
	c := p.compact(v)
	if c == nil {
		return
	}
	p.ev.Add(key, event.Bytes(c))
	if c[0] == '{' && len(c) < maxFlattened {
		p.ev.Add(flatKey, event.Raw(c))
	}
}

func (p *Parser) tls() {
	r := &p.rec
	if v := p.text(r.tlsVersion); v != nil {
		// "TLSv1.2" → tls.version_protocol "tls", tls.version "1.2".
		if i := bytes.IndexByte(v, 'v'); i > 0 && i < len(v)-1 {
			start := len(p.arena)
			for _, c := range v[:i] {
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				p.arena = append(p.arena, c)
			}
			p.ev.Add("tls.version_protocol", event.Bytes(p.arena[start:]))
			p.ev.Add("tls.version", event.Bytes(v[i+1:]))
		}
	}
	p.str("tls.cipher", r.tlsCipher)
	p.str("tls.client.server_name", r.tlsHost)
}

// resources writes aws.cloudtrail.resources with Elastic's key names (arn, account_id,
// type), and adds each ARN to related.entity.
func (p *Parser) resources() {
	v := p.rec.resources
	if len(v) == 0 || v[0] != '[' {
		return
	}
	s := jsonscan.Scanner{Data: v, Pos: 1}
	start := len(p.arena)
	p.arena = append(p.arena, '[')
	n := 0
	first := true
	for {
		ok, err := s.NextElement(&first)
		if err != nil || !ok {
			break
		}
		var arn, account, typ jstr
		err = s.Members(1, func(k []byte) error {
			switch string(k) {
			case "ARN", "arn":
				return scalar(&s, &arn)
			case "accountId":
				return scalar(&s, &account)
			case "type":
				return scalar(&s, &typ)
			}
			return s.Skip(2)
		})
		if err != nil {
			break
		}
		if arn.b == nil && account.b == nil && typ.b == nil {
			continue
		}
		if n > 0 {
			p.arena = append(p.arena, ',')
		}
		n++
		p.arena = append(p.arena, '{')
		sep := false
		for _, f := range [...]struct {
			name string
			v    jstr
		}{{"account_id", account}, {"arn", arn}, {"type", typ}} {
			if f.v.b == nil {
				continue
			}
			if sep {
				p.arena = append(p.arena, ',')
			}
			sep = true
			p.arena = append(p.arena, '"')
			p.arena = append(p.arena, f.name...)
			p.arena = append(p.arena, '"', ':')
			p.arena = event.AppendStringBytes(p.arena, p.text(f.v))
		}
		p.arena = append(p.arena, '}')
		p.addEntity(arn)
	}
	p.arena = append(p.arena, ']')
	if n > 0 {
		p.ev.Add("aws.cloudtrail.resources", event.Raw(p.arena[start:len(p.arena):len(p.arena)]))
	}
}

// categorize sets event.outcome, event.type and event.category the way Elastic's
// pipeline does.
func (p *Parser) categorize() {
	r, e := &p.rec, &p.ev
	outcome := "success"
	if r.errorCode.b != nil || r.errorMessage.b != nil {
		outcome = "failure"
	}
	name := r.eventName.b
	if string(name) == "ConsoleLogin" {
		switch {
		case bytes.EqualFold(r.reConsoleLogin.b, []byte("Success")):
			outcome = "success"
		case bytes.EqualFold(r.reConsoleLogin.b, []byte("Failure")):
			outcome = "failure"
		}
	}
	e.Add("event.outcome", event.String(outcome))
	if c, ok := categories[string(name)]; ok && !r.eventName.esc {
		e.Add("event.category", event.Raw(c.category))
		e.Add("event.type", event.Raw(c.typ))
	} else {
		e.Add("event.type", event.Raw(defaultType))
	}
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}
