// Package protocol is the one place that knows Flotilla's protocol
// vocabulary: annotation and label keys, well-known names and values. Every
// other package refers to these constants instead of spelling a key again.
// The keys are Admiralty's, so that objects written for Admiralty work
// unchanged.
package protocol
