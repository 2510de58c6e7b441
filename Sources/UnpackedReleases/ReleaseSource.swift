import Distribution
import OCI
import ReleaseSpec

extension ReleaseSpec.Source {
    /// Opens the image at this source, runs `body` with it, and closes it: a store is read in place, a
    /// registry is spoken to at exactly the base the spec names.
    func withImage<Result>(_ image: PinnedImage, options: RegistryOptions,
                           _ body: (any ImageSource) async throws -> Result) async throws -> Result {
        let opener: EndpointOpener
        let location: ImageLocation
        switch self {
        case .store(let path):
            opener = EndpointOpener(storePath: path, options: options)
            location = .store(image.name, .digest(image.digest))
        case .registry(let base):
            opener = EndpointOpener(storePath: "", options: options)
            location = .registry(base: base, repository: image.name.value, .digest(image.digest), style: .url)
        }
        return try await opener.withSource(location, body)
    }
}
