// Package vpcflowparse parses Amazon VPC flow log records into ECS events, with the
// field names of Elastic's AWS integration (data stream aws.vpcflow). It reads the
// default (version 2) format and custom formats, whose field list comes from the
// source's options or from the header line of S3 log files.
package vpcflowparse

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/internal/event"
	"github.com/vigil-sec/vigil/internal/parse"
	"github.com/vigil-sec/vigil/internal/parse/fieldscan"
)

// Dataset is the event.dataset of the events.
const Dataset = "aws.vpcflow"

type fid uint8

// The fields of VPC flow logs, in AWS's documented order (versions 2 to 11).
const (
	fUnknown fid = iota
	fVersion
	fAccountID
	fInterfaceID
	fSrcAddr
	fDstAddr
	fSrcPort
	fDstPort
	fProtocol
	fPackets
	fBytes
	fStart
	fEnd
	fAction
	fLogStatus
	fVpcID
	fSubnetID
	fInstanceID
	fTCPFlags
	fType
	fPktSrcAddr
	fPktDstAddr
	fRegion
	fAzID
	fSublocationType
	fSublocationID
	fPktSrcAwsService
	fPktDstAwsService
	fFlowDirection
	fTrafficPath
	fEcsClusterArn
	fEcsClusterName
	fEcsContainerInstanceArn
	fEcsContainerInstanceID
	fEcsContainerID
	fEcsSecondContainerID
	fEcsServiceName
	fEcsTaskDefinitionArn
	fEcsTaskArn
	fEcsTaskID
	fRejectReason
	fResourceID
	fEncryptionStatus
	fInterfaceType
	numFields
)

// names are AWS's field names (with "_" for "-"); keys the aws.vpcflow.* path a field
// is kept under, when Elastic keeps it there (the others become ECS fields only).
var (
	names = [numFields]string{
		fVersion: "version", fAccountID: "account_id", fInterfaceID: "interface_id",
		fSrcAddr: "srcaddr", fDstAddr: "dstaddr", fSrcPort: "srcport", fDstPort: "dstport",
		fProtocol: "protocol", fPackets: "packets", fBytes: "bytes", fStart: "start", fEnd: "end",
		fAction: "action", fLogStatus: "log_status", fVpcID: "vpc_id", fSubnetID: "subnet_id",
		fInstanceID: "instance_id", fTCPFlags: "tcp_flags", fType: "type",
		fPktSrcAddr: "pkt_srcaddr", fPktDstAddr: "pkt_dstaddr", fRegion: "region", fAzID: "az_id",
		fSublocationType: "sublocation_type", fSublocationID: "sublocation_id",
		fPktSrcAwsService: "pkt_src_aws_service", fPktDstAwsService: "pkt_dst_aws_service",
		fFlowDirection: "flow_direction", fTrafficPath: "traffic_path",
		fEcsClusterArn: "ecs_cluster_arn", fEcsClusterName: "ecs_cluster_name",
		fEcsContainerInstanceArn: "ecs_container_instance_arn", fEcsContainerInstanceID: "ecs_container_instance_id",
		fEcsContainerID: "ecs_container_id", fEcsSecondContainerID: "ecs_second_container_id",
		fEcsServiceName: "ecs_service_name", fEcsTaskDefinitionArn: "ecs_task_definition_arn",
		fEcsTaskArn: "ecs_task_arn", fEcsTaskID: "ecs_task_id", fRejectReason: "reject_reason",
		fResourceID: "resource_id", fEncryptionStatus: "encryption_status", fInterfaceType: "interface_type",
	}
	keys = [numFields]string{
		fVersion: "aws.vpcflow.version", fAccountID: "aws.vpcflow.account_id",
		fInterfaceID: "aws.vpcflow.interface_id", fAction: "aws.vpcflow.action",
		fLogStatus: "aws.vpcflow.log_status", fVpcID: "aws.vpcflow.vpc_id",
		fSubnetID: "aws.vpcflow.subnet_id", fInstanceID: "aws.vpcflow.instance_id",
		fTCPFlags: "aws.vpcflow.tcp_flags", fType: "aws.vpcflow.type",
		fPktSrcAddr: "aws.vpcflow.pkt_srcaddr", fPktDstAddr: "aws.vpcflow.pkt_dstaddr",
		fSublocationType: "aws.vpcflow.sublocation_type", fSublocationID: "aws.vpcflow.sublocation_id",
		// Elastic shortens these two.
		fPktSrcAwsService: "aws.vpcflow.pkt_src_service", fPktDstAwsService: "aws.vpcflow.pkt_dst_service",
		fTrafficPath:   "aws.vpcflow.traffic_path",
		fEcsClusterArn: "aws.vpcflow.ecs_cluster_arn", fEcsClusterName: "aws.vpcflow.ecs_cluster_name",
		fEcsContainerInstanceArn: "aws.vpcflow.ecs_container_instance_arn",
		fEcsContainerInstanceID:  "aws.vpcflow.ecs_container_instance_id",
		fEcsContainerID:          "aws.vpcflow.ecs_container_id",
		fEcsSecondContainerID:    "aws.vpcflow.ecs_second_container_id",
		fEcsServiceName:          "aws.vpcflow.ecs_service_name",
		fEcsTaskDefinitionArn:    "aws.vpcflow.ecs_task_definition_arn",
		fEcsTaskArn:              "aws.vpcflow.ecs_task_arn", fEcsTaskID: "aws.vpcflow.ecs_task_id",
		fRejectReason: "aws.vpcflow.reject_reason", fResourceID: "aws.vpcflow.resource_id",
		fEncryptionStatus: "aws.vpcflow.encryption_status", fInterfaceType: "aws.vpcflow.interface_type",
	}
)

func fieldID(name string) fid {
	for f := fVersion; f < numFields; f++ {
		if names[f] == name {
			return f
		}
	}
	return fUnknown
}

// defaultMin is the number of fields of the default format.
const defaultMin = 14

// Parser parses one record per line. It remembers the field list of the last header
// line, so it is not safe for concurrent use.
type Parser struct {
	layout  []fid // from options or a header; nil means the default format
	vals    [numFields][]byte
	ev      event.Event
	scratch []byte
}

// New returns a parser with the given options.
func New(cfg Config) *Parser {
	p := &Parser{scratch: make([]byte, 0, 256)}
	for _, f := range cfg.Fields {
		p.layout = append(p.layout, fieldID(normalize(f)))
	}
	return p
}

// Parse implements parse.Parser.
func (p *Parser) Parse(rec []byte, out parse.Emitter) error {
	line := bytes.TrimRight(rec, "\r\n")
	if len(bytes.TrimSpace(line)) == 0 {
		out.Skip("blank_line")
		return nil
	}
	if isHeader(line) {
		var layout []fid
		for _, n := range strings.Fields(string(line)) {
			layout = append(layout, fieldID(normalize(n)))
		}
		p.layout = layout
		out.Skip("header")
		return nil
	}
	clear(p.vals[:])
	n := 0
	for rest := line; len(rest) > 0; {
		for len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			break
		}
		i := bytes.IndexByte(rest, ' ')
		if i < 0 {
			i = len(rest)
		}
		tok := rest[:i]
		rest = rest[i:]
		var f fid
		if p.layout != nil {
			if n < len(p.layout) {
				f = p.layout[n]
			}
		} else if n+1 < int(numFields) {
			f = fid(n + 1)
		}
		n++
		if f != fUnknown && !(len(tok) == 1 && tok[0] == '-') {
			p.vals[f] = tok
		}
	}
	want := defaultMin
	if p.layout != nil {
		want = len(p.layout)
	}
	if n < want {
		return fmt.Errorf("vpcflow: line has %d fields, the format has %d", n, want)
	}
	e := &p.ev
	e.Reset()
	e.Dataset = Dataset
	p.scratch = p.scratch[:0]
	if err := p.build(e); err != nil {
		return err
	}
	return out.Emit(e)
}

// isHeader reports whether line is a field-name header (S3 log files start with one):
// its first word is a field name rather than a value.
func isHeader(line []byte) bool {
	first := line
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		first = line[:i]
	}
	if len(first) < 2 || !(first[0] >= 'a' && first[0] <= 'z') {
		return false
	}
	var buf [32]byte
	if len(first) > len(buf) {
		return false
	}
	for i, c := range first {
		if c == '-' {
			c = '_'
		}
		buf[i] = c
	}
	return fieldID(string(buf[:len(first)])) != fUnknown
}

func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func (p *Parser) intField(f fid) (int64, bool, error) {
	b := p.vals[f]
	if b == nil {
		return 0, false, nil
	}
	v, ok := fieldscan.ParseInt(b)
	if !ok || v < 0 {
		return 0, false, fmt.Errorf("vpcflow: field %s: not a non-negative integer: %q", names[f], clip(b))
	}
	return v, true, nil
}

var (
	categoryJSON = []byte(`["network"]`)
	typeJSON     = []byte(`["connection"]`)
	tcpFlagNames = [...]string{"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"}
)

func (p *Parser) build(e *event.Event) error {
	var nums [numFields]int64
	var has [numFields]bool
	for _, f := range []fid{fSrcPort, fDstPort, fProtocol, fPackets, fBytes, fStart, fEnd, fTCPFlags} {
		v, ok, err := p.intField(f)
		if err != nil {
			return err
		}
		nums[f], has[f] = v, ok
	}
	if has[fSrcPort] && nums[fSrcPort] > 65535 || has[fDstPort] && nums[fDstPort] > 65535 {
		return fmt.Errorf("vpcflow: port out of range: %d -> %d", nums[fSrcPort], nums[fDstPort])
	}
	for f := fVersion; f < numFields; f++ {
		if k := keys[f]; k != "" && p.vals[f] != nil {
			e.Add(k, event.Bytes(p.vals[f]))
		}
	}
	if has[fTCPFlags] {
		start := len(p.scratch)
		p.scratch = append(p.scratch, '[')
		first := true
		for i, name := range tcpFlagNames {
			if nums[fTCPFlags]&(1<<i) != 0 {
				if !first {
					p.scratch = append(p.scratch, ',')
				}
				p.scratch = append(p.scratch, '"')
				p.scratch = append(p.scratch, name...)
				p.scratch = append(p.scratch, '"')
				first = false
			}
		}
		p.scratch = append(p.scratch, ']')
		e.Add("aws.vpcflow.tcp_flags_array", event.Raw(p.scratch[start:len(p.scratch):len(p.scratch)]))
	}
	e.Add("cloud.provider", event.String("aws"))
	if v := p.vals[fAccountID]; v != nil {
		e.Add("cloud.account.id", event.Bytes(v))
	}
	if v := p.vals[fRegion]; v != nil {
		e.Add("cloud.region", event.Bytes(v))
	}
	if v := p.vals[fAzID]; v != nil {
		e.Add("cloud.availability_zone", event.Bytes(v))
	}
	if v := p.vals[fInstanceID]; v != nil {
		e.Add("cloud.instance.id", event.Bytes(v))
	}
	src, dst := p.vals[fSrcAddr], p.vals[fDstAddr]
	srcV, dstV := 0, 0
	if src != nil {
		e.Add("source.address", event.Bytes(src))
		if srcV = fieldscan.IPVersion(src); srcV != 0 {
			e.Add("source.ip", event.Bytes(src))
		}
	}
	if has[fSrcPort] {
		e.Add("source.port", event.Int(nums[fSrcPort]))
	}
	if dst != nil {
		e.Add("destination.address", event.Bytes(dst))
		if dstV = fieldscan.IPVersion(dst); dstV != 0 {
			e.Add("destination.ip", event.Bytes(dst))
		}
	}
	if has[fDstPort] {
		e.Add("destination.port", event.Int(nums[fDstPort]))
	}
	if srcV != 0 || dstV != 0 {
		start := len(p.scratch)
		p.scratch = append(p.scratch, '[')
		if srcV != 0 {
			p.scratch = event.AppendStringBytes(p.scratch, src)
		}
		if dstV != 0 && !(srcV != 0 && bytes.Equal(src, dst)) {
			if srcV != 0 {
				p.scratch = append(p.scratch, ',')
			}
			p.scratch = event.AppendStringBytes(p.scratch, dst)
		}
		p.scratch = append(p.scratch, ']')
		e.Add("related.ip", event.Raw(p.scratch[start:len(p.scratch):len(p.scratch)]))
	}
	// The flow's bytes and packets are counted from source to destination.
	if has[fBytes] {
		e.Add("network.bytes", event.Int(nums[fBytes]))
		e.Add("source.bytes", event.Int(nums[fBytes]))
	}
	if has[fPackets] {
		e.Add("network.packets", event.Int(nums[fPackets]))
		e.Add("source.packets", event.Int(nums[fPackets]))
	}
	if has[fProtocol] {
		e.Add("network.iana_number", event.Bytes(p.vals[fProtocol]))
		if t := transport(nums[fProtocol]); t != "" {
			e.Add("network.transport", event.String(t))
		}
	}
	switch {
	case bytes.EqualFold(p.vals[fType], []byte("ipv4")) || (p.vals[fType] == nil && srcV == 4):
		e.Add("network.type", event.String("ipv4"))
	case bytes.EqualFold(p.vals[fType], []byte("ipv6")) || (p.vals[fType] == nil && srcV == 6):
		e.Add("network.type", event.String("ipv6"))
	}
	if d := p.vals[fFlowDirection]; d != nil {
		e.Add("network.direction", event.Bytes(d))
	}
	e.Add("event.kind", event.String("event"))
	e.Add("event.category", event.Raw(categoryJSON))
	e.Add("event.type", event.Raw(typeJSON))
	switch string(p.vals[fAction]) {
	case "ACCEPT":
		e.Add("event.outcome", event.String("success"))
	case "REJECT":
		e.Add("event.outcome", event.String("failure"))
	}
	if has[fStart] {
		e.Add("event.start", event.Time(time.Unix(nums[fStart], 0).UTC()))
	}
	if has[fEnd] {
		t := time.Unix(nums[fEnd], 0).UTC()
		e.Add("event.end", event.Time(t))
		e.Time = t // Elastic's @timestamp is the end of the capture window
	} else if has[fStart] {
		e.Time = time.Unix(nums[fStart], 0).UTC()
	}
	return nil
}

// transport names the IANA protocol numbers seen in flow logs.
func transport(n int64) string {
	switch n {
	case 1:
		return "icmp"
	case 2:
		return "igmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 47:
		return "gre"
	case 50:
		return "esp"
	case 51:
		return "ah"
	case 58:
		return "ipv6-icmp"
	case 132:
		return "sctp"
	}
	return ""
}
