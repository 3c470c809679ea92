package sigma

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/vigil-sec/vigil/internal/event"
)

// AlertDataset is the event.dataset of alerts.
const AlertDataset = "vigil.alert"

// Severity returns the event.severity of a Sigma level (the ECS / Elastic detection
// scale), and 0 for an unknown one.
func Severity(level string) int64 {
	switch level {
	case "informational":
		return 1
	case "low":
		return 21
	case "medium":
		return 47
	case "high":
		return 73
	case "critical":
		return 99
	}
	return 0
}

// AlertID returns the deterministic event.id of the alert of rule ruleID on the event
// eventID: re-processing the same event overwrites the alert instead of adding one.
func AlertID(ruleID, eventID string) string {
	h := sha256.New()
	h.Write([]byte("sigma\x00"))
	h.Write([]byte(ruleID))
	h.Write([]byte{0})
	h.Write([]byte(eventID))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:event.IDLen*3/4])
}

// fillAlert sets a into the alert of r on src. doc is src encoded as JSON (it is
// borrowed: a must be encoded before doc changes).
func fillAlert(a *event.Event, r *Rule, src *event.Event, doc []byte) {
	a.Reset()
	srcID, _ := src.Get("event.id")
	id := srcID.Str()
	if ts, ok := src.Get("@timestamp"); ok {
		a.Add("@timestamp", ts)
		a.Add("vigil.alert.event.timestamp", ts)
	}
	a.Add("event.id", event.String(AlertID(r.ID, id)))
	a.Add("event.kind", event.String("alert"))
	a.Add("event.dataset", event.String(AlertDataset))
	a.Add("event.module", event.String("sigma"))
	if sev := Severity(r.Level); sev > 0 {
		a.Add("event.severity", event.Int(sev))
		a.Add("event.risk_score", event.Float(float64(sev)))
		a.Add("log.level", event.String(r.Level))
	}
	a.Add("rule.id", event.String(r.ID))
	a.Add("rule.uuid", event.String(r.ID))
	a.Add("rule.name", event.String(r.Title))
	// The Detection Rule License (DRL 1.1) requires the author in every alert.
	a.Add("rule.author", event.String(r.Author))
	a.Add("rule.license", event.String("DRL-1.1"))
	a.Add("rule.ruleset", event.String("sigma"))
	if r.Description != "" {
		a.Add("rule.description", event.String(r.Description))
	}
	if len(r.References) > 0 {
		a.Add("rule.reference", event.Strings(r.References))
	}
	if r.Logsource != (Logsource{}) {
		a.Add("rule.category", event.String(strings.Trim(r.Logsource.String(), "{}")))
	}
	if len(r.Tags) > 0 {
		a.Add("tags", event.Strings(r.Tags))
		var techniques []string
		for _, t := range r.Tags {
			if rest, ok := strings.CutPrefix(t, "attack.t"); ok && rest != "" && rest[0] >= '0' && rest[0] <= '9' {
				techniques = append(techniques, "T"+strings.ToUpper(rest))
			}
		}
		if techniques != nil {
			a.Add("threat.framework", event.String("MITRE ATT&CK"))
			a.Add("threat.technique.id", event.Strings(techniques))
		}
	}
	a.Add("vigil.alert.event.id", event.String(id))
	if ds, ok := src.Get("event.dataset"); ok {
		a.Add("vigil.alert.event.dataset", ds)
	}
	if len(doc) > 0 {
		a.Add("vigil.alert.source_event", event.Raw(doc))
	}
	a.ID = AlertID(r.ID, id)
	a.Dataset = AlertDataset
	a.Time = src.Time
}
