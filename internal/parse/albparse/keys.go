package albparse

// Keys of the fields the parser sets, as small integers in the order the encoder
// sorts them (segment by segment, "." first). The parser collects values by key and
// adds them to the event in this order, because the encoder's sort is then nearly
// free: it is most of the cost of an event otherwise.
type key uint8

const (
	kAwsElbActionExecuted                key = iota // aws.elb.action_executed
	kAwsElbAlpnBeProtocol                           // aws.elb.alpn_be_protocol
	kAwsElbAlpnClientPreferenceList                 // aws.elb.alpn_client_preference_list
	kAwsElbAlpnFeProtocol                           // aws.elb.alpn_fe_protocol
	kAwsElbBackendHttpResponseStatusCode            // aws.elb.backend.http.response.status_code
	kAwsElbBackendIp                                // aws.elb.backend.ip
	kAwsElbBackendPort                              // aws.elb.backend.port
	kAwsElbBackendProcessingTimeSec                 // aws.elb.backend_processing_time.sec
	kAwsElbChosenCertArn                            // aws.elb.chosen_cert.arn
	kAwsElbChosenCertSerial                         // aws.elb.chosen_cert.serial
	kAwsElbClassification                           // aws.elb.classification
	kAwsElbClassificationReason                     // aws.elb.classification_reason
	kAwsElbConnectionTimeMs                         // aws.elb.connection_time.ms
	kAwsElbConnectionTraceId                        // aws.elb.connection_trace_id
	kAwsElbErrorReason                              // aws.elb.error.reason
	kAwsElbIncomingTlsAlert                         // aws.elb.incoming_tls_alert
	kAwsElbLeafClientCertNotAfter                   // aws.elb.leaf_client_cert_not_after
	kAwsElbLeafClientCertNotBefore                  // aws.elb.leaf_client_cert_not_before
	kAwsElbLeafClientCertSerialNumber               // aws.elb.leaf_client_cert_serial_number
	kAwsElbLeafClientCertSubject                    // aws.elb.leaf_client_cert_subject
	kAwsElbListener                                 // aws.elb.listener
	kAwsElbMatchedRulePriority                      // aws.elb.matched_rule_priority
	kAwsElbName                                     // aws.elb.name
	kAwsElbProtocol                                 // aws.elb.protocol
	kAwsElbRedirectUrl                              // aws.elb.redirect_url
	kAwsElbRequestProcessingTimeSec                 // aws.elb.request_processing_time.sec
	kAwsElbRequestTransformStatus                   // aws.elb.request_transform_status
	kAwsElbResponseProcessingTimeSec                // aws.elb.response_processing_time.sec
	kAwsElbSslCipher                                // aws.elb.ssl_cipher
	kAwsElbSslProtocol                              // aws.elb.ssl_protocol
	kAwsElbTargetGroupArn                           // aws.elb.target_group.arn
	kAwsElbTargetPort                               // aws.elb.target_port
	kAwsElbTargetStatusCode                         // aws.elb.target_status_code
	kAwsElbTlsConnectionCreationTime                // aws.elb.tls_connection_creation_time
	kAwsElbTlsErrorCode                             // aws.elb.tls_error_code
	kAwsElbTlsHandshakeLatency                      // aws.elb.tls_handshake_latency
	kAwsElbTlsHandshakeTimeMs                       // aws.elb.tls_handshake_time.ms
	kAwsElbTlsNamedGroup                            // aws.elb.tls_named_group
	kAwsElbTlsVerifyStatus                          // aws.elb.tls_verify_status
	kAwsElbTraceId                                  // aws.elb.trace_id
	kAwsElbTransformedHost                          // aws.elb.transformed_host
	kAwsElbTransformedUri                           // aws.elb.transformed_uri
	kAwsElbType                                     // aws.elb.type
	kClientIp                                       // client.ip
	kClientPort                                     // client.port
	kCloudProvider                                  // cloud.provider
	kDestinationBytes                               // destination.bytes
	kDestinationDomain                              // destination.domain
	kEventCategory                                  // event.category
	kEventEnd                                       // event.end
	kEventKind                                      // event.kind
	kEventOutcome                                   // event.outcome
	kEventStart                                     // event.start
	kHttpRequestBodyBytes                           // http.request.body.bytes
	kHttpRequestMethod                              // http.request.method
	kHttpResponseBodyBytes                          // http.response.body.bytes
	kHttpResponseStatusCode                         // http.response.status_code
	kHttpVersion                                    // http.version
	kRelatedIp                                      // related.ip
	kSourceAddress                                  // source.address
	kSourceBytes                                    // source.bytes
	kSourceIp                                       // source.ip
	kSourcePort                                     // source.port
	kTlsCipher                                      // tls.cipher
	kTlsVersion                                     // tls.version
	kTlsVersionProtocol                             // tls.version_protocol
	kTraceId                                        // trace.id
	kUrlDomain                                      // url.domain
	kUrlExtension                                   // url.extension
	kUrlFragment                                    // url.fragment
	kUrlOriginal                                    // url.original
	kUrlPath                                        // url.path
	kUrlPort                                        // url.port
	kUrlQuery                                       // url.query
	kUrlScheme                                      // url.scheme
	kUserAgentOriginal                              // user_agent.original
	numKeys

	// noKey is "no field" for optional key parameters.
	noKey = numKeys
)

var keyNames = [numKeys]string{
	kAwsElbActionExecuted:                "aws.elb.action_executed",
	kAwsElbAlpnBeProtocol:                "aws.elb.alpn_be_protocol",
	kAwsElbAlpnClientPreferenceList:      "aws.elb.alpn_client_preference_list",
	kAwsElbAlpnFeProtocol:                "aws.elb.alpn_fe_protocol",
	kAwsElbBackendHttpResponseStatusCode: "aws.elb.backend.http.response.status_code",
	kAwsElbBackendIp:                     "aws.elb.backend.ip",
	kAwsElbBackendPort:                   "aws.elb.backend.port",
	kAwsElbBackendProcessingTimeSec:      "aws.elb.backend_processing_time.sec",
	kAwsElbChosenCertArn:                 "aws.elb.chosen_cert.arn",
	kAwsElbChosenCertSerial:              "aws.elb.chosen_cert.serial",
	kAwsElbClassification:                "aws.elb.classification",
	kAwsElbClassificationReason:          "aws.elb.classification_reason",
	kAwsElbConnectionTimeMs:              "aws.elb.connection_time.ms",
	kAwsElbConnectionTraceId:             "aws.elb.connection_trace_id",
	kAwsElbErrorReason:                   "aws.elb.error.reason",
	kAwsElbIncomingTlsAlert:              "aws.elb.incoming_tls_alert",
	kAwsElbLeafClientCertNotAfter:        "aws.elb.leaf_client_cert_not_after",
	kAwsElbLeafClientCertNotBefore:       "aws.elb.leaf_client_cert_not_before",
	kAwsElbLeafClientCertSerialNumber:    "aws.elb.leaf_client_cert_serial_number",
	kAwsElbLeafClientCertSubject:         "aws.elb.leaf_client_cert_subject",
	kAwsElbListener:                      "aws.elb.listener",
	kAwsElbMatchedRulePriority:           "aws.elb.matched_rule_priority",
	kAwsElbName:                          "aws.elb.name",
	kAwsElbProtocol:                      "aws.elb.protocol",
	kAwsElbRedirectUrl:                   "aws.elb.redirect_url",
	kAwsElbRequestProcessingTimeSec:      "aws.elb.request_processing_time.sec",
	kAwsElbRequestTransformStatus:        "aws.elb.request_transform_status",
	kAwsElbResponseProcessingTimeSec:     "aws.elb.response_processing_time.sec",
	kAwsElbSslCipher:                     "aws.elb.ssl_cipher",
	kAwsElbSslProtocol:                   "aws.elb.ssl_protocol",
	kAwsElbTargetGroupArn:                "aws.elb.target_group.arn",
	kAwsElbTargetPort:                    "aws.elb.target_port",
	kAwsElbTargetStatusCode:              "aws.elb.target_status_code",
	kAwsElbTlsConnectionCreationTime:     "aws.elb.tls_connection_creation_time",
	kAwsElbTlsErrorCode:                  "aws.elb.tls_error_code",
	kAwsElbTlsHandshakeLatency:           "aws.elb.tls_handshake_latency",
	kAwsElbTlsHandshakeTimeMs:            "aws.elb.tls_handshake_time.ms",
	kAwsElbTlsNamedGroup:                 "aws.elb.tls_named_group",
	kAwsElbTlsVerifyStatus:               "aws.elb.tls_verify_status",
	kAwsElbTraceId:                       "aws.elb.trace_id",
	kAwsElbTransformedHost:               "aws.elb.transformed_host",
	kAwsElbTransformedUri:                "aws.elb.transformed_uri",
	kAwsElbType:                          "aws.elb.type",
	kClientIp:                            "client.ip",
	kClientPort:                          "client.port",
	kCloudProvider:                       "cloud.provider",
	kDestinationBytes:                    "destination.bytes",
	kDestinationDomain:                   "destination.domain",
	kEventCategory:                       "event.category",
	kEventEnd:                            "event.end",
	kEventKind:                           "event.kind",
	kEventOutcome:                        "event.outcome",
	kEventStart:                          "event.start",
	kHttpRequestBodyBytes:                "http.request.body.bytes",
	kHttpRequestMethod:                   "http.request.method",
	kHttpResponseBodyBytes:               "http.response.body.bytes",
	kHttpResponseStatusCode:              "http.response.status_code",
	kHttpVersion:                         "http.version",
	kRelatedIp:                           "related.ip",
	kSourceAddress:                       "source.address",
	kSourceBytes:                         "source.bytes",
	kSourceIp:                            "source.ip",
	kSourcePort:                          "source.port",
	kTlsCipher:                           "tls.cipher",
	kTlsVersion:                          "tls.version",
	kTlsVersionProtocol:                  "tls.version_protocol",
	kTraceId:                             "trace.id",
	kUrlDomain:                           "url.domain",
	kUrlExtension:                        "url.extension",
	kUrlFragment:                         "url.fragment",
	kUrlOriginal:                         "url.original",
	kUrlPath:                             "url.path",
	kUrlPort:                             "url.port",
	kUrlQuery:                            "url.query",
	kUrlScheme:                           "url.scheme",
	kUserAgentOriginal:                   "user_agent.original",
}
