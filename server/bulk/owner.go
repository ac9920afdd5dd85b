package bulk

import (
	"github.com/casefhir/casefhir/server/auth"
	"github.com/casefhir/casefhir/server/interaction"
)

// Owner returns the identity that owns jobs started by a caller: the SMART
// client id and token subject when the caller is a verified principal, the
// caller's Subject otherwise, and "" when access is unrestricted (auth off:
// anyone may then see the job).
func Owner(a interaction.Access) string {
	if a == nil {
		return ""
	}
	if pa, ok := a.(interface{ Principal() *auth.Principal }); ok {
		if p := pa.Principal(); p != nil {
			if p.IsUnrestricted() {
				return ""
			}
			return "client:" + p.ClientID + "|sub:" + p.Subject
		}
	}
	return "sub:" + a.Subject()
}
