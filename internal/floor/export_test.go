package floor

// Test-only access to unexported helpers.
var (
	RequestScopes  = requestScopes
	ParseChallenge = parseChallenge
)
