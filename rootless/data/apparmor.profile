# Template of the AppArmor profile that lets one installed `rootless` create user namespaces on
# Ubuntu 23.10 and later (kernel.apparmor_restrict_unprivileged_userns=1). It confines nothing
# else: flags=(unconfined), the shape of Ubuntu's own profiles for programs that need userns.
#
# `rootless system apparmor-profile` (shipped with the package: this file is its package data) and,
# in the source tree, scripts/install-apparmor-profile.sh fill it in, install and load it (these
# "# " comment lines are left out). By hand: replace @NAME@ with a profile name starting with
# "rootless" and @PATH@ with the entry point, symlinks resolved (`readlink -f "$(command -v
# rootless)"`: AppArmor matches the real path of the file the kernel executes), save it as
# /etc/apparmor.d/@NAME@ and run `sudo apparmor_parser -r /etc/apparmor.d/@NAME@`.
abi <abi/4.0>,
include <tunables/global>

profile @NAME@ @PATH@ flags=(unconfined) {
  userns,

  # additions for this machine go in /etc/apparmor.d/local/@NAME@
  include if exists <local/@NAME@>
}
