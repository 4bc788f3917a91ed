// Package remote is the only code that dials another cluster. It keeps one
// connection per target (a client and a shared informer cache), replaces it
// when the target's configuration changes and closes it when the target goes,
// all while the process runs. Each connection probes its target continuously
// and reports its health in words a user can act on; a health change is
// published as an event so that controllers react at once.
package remote
