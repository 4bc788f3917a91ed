package validation

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/flotilla-io/flotilla/pkg/apis/config"
)

// ValidateProxyArgs checks the Proxy plugin's args: both timeouts must be
// positive and maxTargets must not be negative (0 means no limit). path is the
// args' path in the configuration, e.g. profiles[0].pluginConfig[0].args; the
// fields are reported under it.
func ValidateProxyArgs(path *field.Path, args *config.ProxyArgs) error {
	var errs field.ErrorList
	errs = append(errs, validateTimeout(path.Child("candidateVerdictTimeout"), args.CandidateVerdictTimeout)...)
	errs = append(errs, validateTimeout(path.Child("delegateBindTimeout"), args.DelegateBindTimeout)...)
	if args.MaxTargets < 0 {
		errs = append(errs, field.Invalid(path.Child("maxTargets"), args.MaxTargets,
			"must be greater than or equal to 0 (0 means no limit)"))
	}
	return errs.ToAggregate()
}

// ValidateCandidateArgs checks the Candidate plugin's args: permitWaitTimeout
// must be positive. path is the args' path in the configuration; the fields
// are reported under it.
func ValidateCandidateArgs(path *field.Path, args *config.CandidateArgs) error {
	return validateTimeout(path.Child("permitWaitTimeout"), args.PermitWaitTimeout).ToAggregate()
}

func validateTimeout(path *field.Path, d metav1.Duration) field.ErrorList {
	if d.Duration <= 0 {
		return field.ErrorList{field.Invalid(path, d.Duration.String(), "must be a duration greater than 0, e.g. 5s")}
	}
	return nil
}
