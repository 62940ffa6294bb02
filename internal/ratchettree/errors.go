package ratchettree

import "fmt"

// Rule names a check of the tree protocol. Rules are append-only: the
// chain verifier and clients map them to coffer error rules.
type Rule string

const (
	RuleShape       Rule = "tree-shape"        // malformed commit: sizes, indices, ops, ordering
	RuleLeaf        Rule = "tree-leaf"         // the op's leaf is not one it may act on
	RulePublicKey   Rule = "tree-public-key"   // a refreshed node's public key is missing or not X-Wing
	RuleCiphertexts Rule = "tree-ciphertexts"  // not exactly one ciphertext per resolution node
	RuleTreeHash    Rule = "tree-hash"         // the tree hash the commit claims is not the tree's
	RuleTaint       Rule = "tree-taint"        // a removed or demoted admin still knows a node secret
	RuleWithheld    Rule = "tree-withheld"     // no ciphertext for the receiver's position
	RuleDecrypt     Rule = "tree-decrypt"      // the receiver's ciphertext does not open (wrong node, group, epoch)
	RuleKeyMismatch Rule = "tree-key-mismatch" // a derived public key differs from the committed one
	RuleUnknownNode Rule = "tree-unknown-node" // the receiver holds no secret for the node it must use
	RuleNodeProof   Rule = "tree-node-proof"   // reserved: a fetched node does not prove against the tree hash
)

// Error is a failed tree check. Every verifier and receiver failure is an
// *Error with its Rule; callers in the coffer packages report them as
// *coffer.SecurityError (client side) or a chain rule (VerifyChain).
type Error struct {
	Rule   Rule
	Detail string
}

func (e *Error) Error() string { return fmt.Sprintf("ratchettree: %s (rule %s)", e.Detail, e.Rule) }

func errorf(r Rule, format string, args ...any) error {
	return &Error{Rule: r, Detail: fmt.Sprintf(format, args...)}
}
