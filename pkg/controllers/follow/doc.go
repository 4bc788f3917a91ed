// Package follow runs in a source: it copies the ConfigMaps and Secrets
// that proxy pods reference to the targets chosen for them, before their
// delegates may start, and keeps the copies in sync.
package follow
