package cloudtrailparse

// categorization is the ECS event.category / event.type of one eventName, as raw JSON
// arrays so that they are written without allocating.
type categorization struct {
	category []byte
	typ      []byte
}

func cat(category, typ string) categorization {
	return categorization{category: []byte(category), typ: []byte(typ)}
}

// defaultType is event.type for every event whose name is not in the table.
var defaultType = []byte(`["info"]`)

// categories follows the "Add ECS categorization" table of Elastic's AWS CloudTrail
// ingest pipeline, so that detection rules written against Elastic's fields match ours.
// It is built once and only read.
var categories = map[string]categorization{
	"AddUserToGroup":                     cat(`["iam"]`, `["group","change"]`),
	"AssumeRole":                         cat(`["authentication"]`, `["info"]`),
	"AttachGroupPolicy":                  cat(`["iam"]`, `["group","change"]`),
	"AttachUserPolicy":                   cat(`["iam"]`, `["user","change"]`),
	"ChangePassword":                     cat(`["iam"]`, `["user","change"]`),
	"ConsoleLogin":                       cat(`["authentication"]`, `["info"]`),
	"CreateAccessKey":                    cat(`["iam"]`, `["user","change"]`),
	"CreateBucket":                       cat(`["file"]`, `["creation"]`),
	"CreateGroup":                        cat(`["iam"]`, `["group","creation"]`),
	"CreateKeyPair":                      cat(`["iam"]`, `["admin","creation"]`),
	"CreateUser":                         cat(`["iam"]`, `["user","creation"]`),
	"CreateVirtualMFADevice":             cat(`["iam"]`, `["user","change"]`),
	"DeactivateMFADevice":                cat(`["iam"]`, `["user","change"]`),
	"DeleteAccessKey":                    cat(`["iam"]`, `["user","change"]`),
	"DeleteBucket":                       cat(`["file"]`, `["deletion"]`),
	"DeleteGroup":                        cat(`["iam"]`, `["group","deletion"]`),
	"DeleteGroupPolicy":                  cat(`["iam"]`, `["group","change"]`),
	"DeleteSSHPublicKey":                 cat(`["iam"]`, `["user","change"]`),
	"DeleteUser":                         cat(`["iam"]`, `["user","deletion"]`),
	"DeleteUserPermissionsBoundary":      cat(`["iam"]`, `["user","change"]`),
	"DeleteUserPolicy":                   cat(`["iam"]`, `["user","change"]`),
	"DeleteVirtualMFADevice":             cat(`["iam"]`, `["user","change"]`),
	"DetachGroupPolicy":                  cat(`["iam"]`, `["group","change"]`),
	"DetachUserPolicy":                   cat(`["iam"]`, `["user","change"]`),
	"EnableMFADevice":                    cat(`["iam"]`, `["user","change"]`),
	"GetGroup":                           cat(`["iam"]`, `["group","info"]`),
	"GetGroupPolicy":                     cat(`["iam"]`, `["group","info"]`),
	"GetUser":                            cat(`["iam"]`, `["user","info"]`),
	"GetUserPolicy":                      cat(`["iam"]`, `["user","info"]`),
	"ListAttachedGroupPolicies":          cat(`["iam"]`, `["group","info"]`),
	"ListAttachedUserPolicies":           cat(`["iam"]`, `["user","info"]`),
	"ListGroupPolicies":                  cat(`["iam"]`, `["group","info"]`),
	"ListGroups":                         cat(`["iam"]`, `["group","info"]`),
	"ListGroupsForUser":                  cat(`["iam"]`, `["user","info"]`),
	"ListUserPolicies":                   cat(`["iam"]`, `["user","info"]`),
	"ListUsers":                          cat(`["iam"]`, `["user","info"]`),
	"ListUserTags":                       cat(`["iam"]`, `["user","info"]`),
	"PutGroupPolicy":                     cat(`["iam"]`, `["group","change"]`),
	"PutUserPermissionsBoundary":         cat(`["iam"]`, `["user","change"]`),
	"PutUserPolicy":                      cat(`["iam"]`, `["user","change"]`),
	"RemoveUserFromGroup":                cat(`["iam"]`, `["group","change"]`),
	"SetDefaultPolicyVersion":            cat(`["iam"]`, `["admin","change"]`),
	"SetSecurityTokenServicePreferences": cat(`["iam"]`, `["admin","change"]`),
	"TagUser":                            cat(`["iam"]`, `["user","change"]`),
	"UntagUser":                          cat(`["iam"]`, `["user","change"]`),
	"UpdateAccessKey":                    cat(`["iam"]`, `["user","change"]`),
	"UpdateAccountPasswordPolicy":        cat(`["iam"]`, `["admin","change"]`),
	"UpdateGroup":                        cat(`["iam"]`, `["group","change"]`),
	"UpdateLoginProfile":                 cat(`["iam"]`, `["user","change"]`),
	"UpdateRole":                         cat(`["iam"]`, `["admin","change"]`),
	"UpdateSSHPublicKey":                 cat(`["iam"]`, `["user","change"]`),
	"UpdateUser":                         cat(`["iam"]`, `["user","change"]`),
}
