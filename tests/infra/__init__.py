"""Tests of the Pulumi program: stack config, resource graph under mocks, policies, hard-coded names."""

import warnings

# pulumi_aws still ships its pre-v7 S3 classes and warns about each one on import; none is used here.
# Set here, in the package, because it must precede the first import of pulumi_aws by any test module.
warnings.filterwarnings("ignore", message=r".*has been deprecated in favor of", category=DeprecationWarning)
