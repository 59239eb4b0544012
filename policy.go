package mtls

// Policy decides whether a verified identity may proceed. Check returns nil to allow, or an error
// saying which rule refused (for logs and the error hook; clients only see "policy_denied").
// Policies are evaluated on every request and must be safe for concurrent use.
type Policy interface {
	Check(id *Identity) error
}

// PolicyFunc adapts a function to [Policy].
type PolicyFunc func(id *Identity) error

// Check calls f(id).
func (f PolicyFunc) Check(id *Identity) error { return f(id) }
