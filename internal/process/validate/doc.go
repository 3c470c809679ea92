// Package validate checks ECS documents against JSON Schemas (draft 2020-12, with
// format assertions on) before they reach the events stream.
//
// Every event meets schemas/ecs-base.json: the fields the pipeline adds (@timestamp as
// an RFC 3339 date-time, event.id, event.dataset, ecs.version), the ECS categorization
// values (event.kind, event.category, event.type, event.outcome), and the ECS types of
// common fields — numbers for ports, byte and packet counts, status codes and pids;
// ipv4/ipv6 strings for ip fields; arrays for related.*, tags, host.ip; objects for
// field sets. It allows every field it does not list, and null for optional ones
// (Elasticsearch takes null as absent).
//
// Vigil ships one schema per built-in dataset (schemas/<dataset>.json): aws.elb_logs,
// aws.cloudfront_logs, aws.vpcflow, aws.cloudtrail, aws.cloudwatch_logs,
// apache.access, nginx.access and syslog. Each $refs the base schema, pins
// event.dataset and cloud.provider, requires what its parser always emits (aws.elb,
// aws.vpcflow, aws.cloudtrail.event_version, aws.cloudwatch.log_group, …) and types
// the vendor fields under aws.* the way the parsers emit them (keyword strings where
// Elastic's integration maps keywords, such as aws.elb.backend.port). The golden
// events of every parser are tested against them, so a parser change that breaks a
// schema fails the tests.
//
// Operators add their own schemas per dataset glob (Config.Datasets); those are
// checked after the base schema, and may $ref the shipped ones by their $id under
// SchemaBaseURL. Nothing is ever fetched from the network: a $ref must name a shipped
// schema or a local file.
package validate
