package audit

// Class says what kind of value a column holds. Only these kinds may be in
// Coffer's database: none of them is a secret, or each is a ciphertext or
// wrap that only clients can open. A column that is not on the allowlist
// below fails the audit, so a new column must be classified here, in the
// same change that adds it.
type Class string

const (
	Identifier    Class = "identifier"     // random ids and keys naming rows or blobs
	Public        Class = "public"         // public by design (handles)
	PublicKey     Class = "public-key"     // Ed25519 and X-Wing public keys
	WrappedKey    Class = "wrapped-key"    // HPKE wraps and history links
	Ciphertext    Class = "ciphertext"     // AES-256-GCM metadata
	Content       Class = "content"        // age-encrypted resource content kept in the row (small resources)
	Signature     Class = "signature"      // Ed25519 and hybrid (Ed25519 + ML-DSA-65) signatures
	Hash          Class = "hash"           // SHA-256 and tlog hashes, of public data or of secrets too large to guess
	SignedData    Class = "signed-data"    // canonical public statements that are signed (identities, commits, headers, checkpoints)
	VerifierState Class = "verifier-state" // the chain verifier's state: public keys and roles
	LogLeaf       Class = "log-leaf"       // transparency log leaves: public identities and commits
	Bookkeeping   Class = "bookkeeping"    // counters, sequence numbers, sizes, roles, times, flags
)

// column is one allowlisted column with its PostgreSQL data type.
type column struct {
	Type  string
	Class Class
}

const (
	tUUID   = "uuid"
	tText   = "text"
	tBytea  = "bytea"
	tBigint = "bigint"
	tInt    = "integer"
	tSmall  = "smallint"
	tBool   = "boolean"
	tTS     = "timestamp with time zone"
	tTSNoTZ = "timestamp without time zone"
)

// allowlist classifies every column of every table in the public schema,
// from migrations 00001 (accounts, groups), 00002 (resources), 00003
// (transparency log), 00005 (upload reservations), 00013 (account chains)
// and goose's own bookkeeping table.
var allowlist = map[string]map[string]column{
	"goose_db_version": {
		"id":         {tInt, Bookkeeping},
		"version_id": {tBigint, Bookkeeping},
		"is_applied": {tBool, Bookkeeping},
		"tstamp":     {tTSNoTZ, Bookkeeping},
	},
	"accounts": {
		"id":             {tUUID, Identifier},
		"handle":         {tText, Public},
		"identity":       {tBytea, SignedData},
		"self_signature": {tBytea, Signature},
		"signing_key":    {tBytea, PublicKey},
		"encryption_key": {tBytea, PublicKey},
		"created_at":     {tTS, Bookkeeping},
		"chain_seq":      {tBigint, Bookkeeping},
		"chain_state":    {tBytea, VerifierState},
	},
	// Suite v2 account chains (00013): signed links, whose bodies hold
	// public keys and HPKE wraps of the user key, and hybrid signatures.
	"account_links": {
		"account_id":       {tUUID, Identifier},
		"seq":              {tBigint, Bookkeeping},
		"body":             {tBytea, SignedData},
		"signature":        {tBytea, Signature},
		"device_signature": {tBytea, Signature},
		"hash":             {tBytea, Hash},
		"created_at":       {tTS, Bookkeeping},
	},
	// Devices waiting to be linked: a hash of the pairing code (never the
	// code), the device's name and public keys, the approving add-device
	// link, and the HMAC tags the code's secret keys.
	"pairings": {
		"id":                 {tText, Hash},
		"handle":             {tText, Public},
		"device_id":          {tUUID, Identifier},
		"device_name":        {tText, Public},
		"signing_key":        {tBytea, PublicKey},
		"encryption_key":     {tBytea, PublicKey},
		"mac":                {tBytea, Signature},
		"approval_body":      {tBytea, SignedData},
		"approval_signature": {tBytea, Signature},
		"approval_mac":       {tBytea, Signature},
		"created_at":         {tTS, Bookkeeping},
		"expires_at":         {tTS, Bookkeeping},
	},
	// The device state of suite v2 accounts (00014): AES-256-GCM under a
	// key derived from the user key, which only the account's devices hold.
	"device_states": {
		"account_id": {tUUID, Identifier},
		"version":    {tBigint, Bookkeeping},
		"ciphertext": {tBytea, Ciphertext},
		"updated_at": {tTS, Bookkeeping},
	},
	// Suite v2 member keys (00015): each generation of each account's
	// public user keys (X-Wing and hybrid signing key), by hash.
	"member_keys": {
		"hash":       {tBytea, Hash},
		"account_id": {tUUID, Identifier},
		"generation": {tBigint, Bookkeeping},
		"keys":       {tBytea, PublicKey},
	},
	"login_challenges": {
		"challenge_hash": {tBytea, Hash},
		"account_id":     {tUUID, Identifier},
		"expires_at":     {tTS, Bookkeeping},
	},
	"refresh_tokens": {
		"token_hash": {tBytea, Hash},
		"family_id":  {tUUID, Identifier},
		"account_id": {tUUID, Identifier},
		"expires_at": {tTS, Bookkeeping},
		"used_at":    {tTS, Bookkeeping},
		"revoked_at": {tTS, Bookkeeping},
	},
	"groups": {
		"id":             {tUUID, Identifier},
		"head_seq":       {tBigint, Bookkeeping},
		"head_hash":      {tBytea, Hash},
		"epoch":          {tBigint, Bookkeeping},
		"state":          {tBytea, VerifierState},
		"state_rows":     {tBool, Bookkeeping},
		"meta_epoch":     {tBigint, Bookkeeping},
		"meta":           {tBytea, Ciphertext},
		"created_at":     {tTS, Bookkeeping},
		"updated_at":     {tTS, Bookkeeping},
		"resource_count": {tBigint, Bookkeeping},
	},
	"commits": {
		"group_id":   {tUUID, Identifier},
		"seq":        {tBigint, Bookkeeping},
		"body":       {tBytea, SignedData},
		"signature":  {tBytea, Signature},
		"hash":       {tBytea, Hash},
		"author_id":  {tUUID, Identifier},
		"epoch":      {tBigint, Bookkeeping},
		"created_at": {tTS, Bookkeeping},
	},
	"group_members": {
		"group_id":   {tUUID, Identifier},
		"account_id": {tUUID, Identifier},
		"role":       {tSmall, Bookkeeping},
		"leaf":       {tInt, Bookkeeping},
	},
	// Tree groups (00018): the public ratchet tree, one row per non-blank
	// node, and the HPKE ciphertexts of node secrets beside each commit.
	"tree_nodes": {
		"group_id":   {tUUID, Identifier},
		"node":       {tInt, Bookkeeping},
		"public_key": {tBytea, PublicKey},
		"taint":      {tBytea, Bookkeeping},
	},
	"tree_ciphertexts": {
		"group_id":  {tUUID, Identifier},
		"seq":       {tBigint, Bookkeeping},
		"node":      {tInt, Bookkeeping},
		"recipient": {tInt, Bookkeeping},
		"sealed":    {tBytea, WrappedKey},
	},
	// The verified state in rows (00020): each account's member entry and
	// role history.
	"group_state_accounts": {
		"group_id":   {tUUID, Identifier},
		"account_id": {tUUID, Identifier},
		"member":     {tBytea, VerifierState},
		"roles":      {tBytea, VerifierState},
	},
	"wrapped_keys": {
		"group_id":  {tUUID, Identifier},
		"epoch":     {tBigint, Bookkeeping},
		"member_id": {tUUID, Identifier},
		"wrap":      {tBytea, WrappedKey},
	},
	"history_links": {
		"group_id": {tUUID, Identifier},
		"epoch":    {tBigint, Bookkeeping},
		"link":     {tBytea, WrappedKey},
	},
	"resources": {
		"id":               {tUUID, Identifier},
		"group_id":         {tUUID, Identifier},
		"version":          {tBigint, Bookkeeping},
		"author_id":        {tUUID, Identifier},
		"epoch":            {tBigint, Bookkeeping},
		"header":           {tBytea, SignedData},
		"header_signature": {tBytea, Signature},
		"meta":             {tBytea, Ciphertext},
		"content_hash":     {tBytea, Hash},
		"size":             {tBigint, Bookkeeping},
		"blob_key":         {tText, Identifier},
		"content":          {tBytea, Content},
		"created_at":       {tTS, Bookkeeping},
		"updated_at":       {tTS, Bookkeeping},
		"chunk_tree":       {tBytea, Hash},
	},
	"uploads": {
		"id":            {tUUID, Identifier},
		"resource_id":   {tUUID, Identifier},
		"group_id":      {tUUID, Identifier},
		"author_id":     {tUUID, Identifier},
		"version":       {tBigint, Bookkeeping},
		"blob_key":      {tText, Identifier},
		"content":       {tBytea, Content},
		"size":          {tBigint, Bookkeeping},
		"content_hash":  {tBytea, Hash},
		"reserved":      {tBigint, Bookkeeping},
		"created_at":    {tTS, Bookkeeping},
		"updated_at":    {tTS, Bookkeeping},
		"writing_key":   {tText, Identifier},
		"writing_until": {tTS, Bookkeeping},
	},
	"log_entries": {
		"id":          {tBigint, Bookkeeping},
		"leaf_index":  {tBigint, Bookkeeping},
		"leaf":        {tBytea, LogLeaf},
		"leaf_hash":   {tBytea, Hash},
		"account_id":  {tUUID, Identifier},
		"group_id":    {tUUID, Identifier},
		"seq":         {tBigint, Bookkeeping},
		"resource_id": {tUUID, Identifier},
		"created_at":  {tTS, Bookkeeping},
	},
	"log_hashes": {
		"hash_index": {tBigint, Bookkeeping},
		"hash":       {tBytea, Hash},
	},
	"log_head": {
		"singleton":    {tBool, Bookkeeping},
		"tree_size":    {tBigint, Bookkeeping},
		"root_hash":    {tBytea, Hash},
		"checkpoint":   {tText, SignedData},
		"updated_at":   {tTS, Bookkeeping},
		"map_log_size": {tBigint, Bookkeeping},
		"map_size":     {tBigint, Bookkeeping},
	},
	// The heads map: public entries (ids, seqs, hashes of public data) and
	// their tlog hashes.
	"map_keys": {
		"map_key":   {tBytea, Identifier},
		"map_index": {tBigint, Bookkeeping},
		"log_size":  {tBigint, Bookkeeping},
	},
	"map_entries": {
		"map_index": {tBigint, Bookkeeping},
		"log_size":  {tBigint, Bookkeeping},
		"entry":     {tBytea, LogLeaf},
	},
	"map_hashes": {
		"hash_index": {tBigint, Bookkeeping},
		"log_size":   {tBigint, Bookkeeping},
		"hash":       {tBytea, Hash},
	},
	"log_checkpoint_gen": {
		"singleton": {tBool, Bookkeeping},
		"gen":       {tBigint, Bookkeeping},
	},
	"log_checkpoints": {
		"tree_size":  {tBigint, Bookkeeping},
		"map_size":   {tBigint, Bookkeeping},
		"checkpoint": {tText, SignedData},
		"cosigned":   {tText, SignedData},
		"signed_at":  {tTS, Bookkeeping},
	},
}

// Classification returns the class of table.column, for documentation and
// tests; ok is false for a column that is not allowlisted.
func Classification(table, col string) (Class, bool) {
	c, ok := allowlist[table][col]
	return c.Class, ok
}
