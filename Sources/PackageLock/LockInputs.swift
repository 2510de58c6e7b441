import Imagefile
import OCI

extension PackageLockFile.Inputs {
    /// The inputs an Imagefile's `repositories` and `packages` give, package relations in their normal
    /// spelling (`libc6 (>= 2.36)`), so that spacing alone does not make a lock stale.
    public init(_ imagefile: Imagefile) {
        self.init(repositories: imagefile.repositories.map { repository in
            PackageLockFile.Repository(url: repository.url, suite: repository.suite, components: repository.components, keyring: repository.keyring)
        }, packages: imagefile.packages.map { $0.relation?.description ?? $0.text })
    }
}

extension Imagefile {
    /// The platforms `imgbuild lock` resolves packages for: `platforms`, else `platform`, else the host's.
    public var lockPlatforms: [Platform] {
        platforms ?? [platform ?? Platform.host]
    }
}
