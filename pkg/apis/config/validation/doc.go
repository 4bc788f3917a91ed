// Package validation checks the internal args of Flotilla's kube-scheduler
// plugins (package config). kube-scheduler validates only its in-tree plugins'
// args, so each plugin's factory calls its validation function here on the
// args it is handed.
package validation
