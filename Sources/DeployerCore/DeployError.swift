import ReleaseSpec

/// Requests the deployer refuses before a rollout starts.
public enum DeployError: Error, CustomStringConvertible {
    case unknownService(String)
    /// The service was taken down while the request waited for the operation before it.
    case takenDown(service: String)
    case rolloutInProgress(service: String, image: PinnedImage, state: RolloutState)
    case listenChanged(service: String, from: String, to: String)
    case nothingToRollBack(service: String, reason: String)
    case cannotListen(service: String, address: String, reason: String)
    case frontUpgradeFailed(service: String, reason: String)
    /// Releases outside the rollback windows could not be removed.
    case cleanupFailed(reason: String)
    /// The service's front did not give its metrics.
    case metricsUnavailable(service: String, reason: String)
    /// `promote` or `abort` with no canary in its steps.
    case noCanaryInProgress(service: String, lastState: RolloutState?)

    /// The request named a service the deployer does not have.
    public var isUnknownService: Bool {
        if case .unknownService = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .unknownService(let name):
            return "no service named '\(name)' has been deployed: `imgdeploy apply SPEC` deploys one, `imgdeploy status` lists them"
        case .takenDown(let service):
            return "\(service) was taken down while this request waited; nothing of it runs now: `imgdeploy apply SPEC` deploys it anew"
        case let .rolloutInProgress(service, image, state):
            return "a rollout of \(image) to \(service) is in progress (\(state.rawValue)): wait for it to finish, then apply again"
        case let .listenChanged(service, from, to):
            return "\(service) listens on \(from) and a running front cannot move to \(to): `imgdeploy down \(service)` first, or keep 'listen: \(from)'"
        case let .nothingToRollBack(service, reason):
            return "cannot roll back \(service): \(reason)"
        case let .cannotListen(service, address, reason):
            return "\(service) cannot listen on \(address): \(reason)"
        case let .frontUpgradeFailed(service, reason):
            return "the front of \(service) was not replaced (the running one goes on serving): \(reason)"
        case let .metricsUnavailable(service, reason):
            return "the front of \(service) gave no metrics: \(reason)"
        case let .noCanaryInProgress(service, lastState):
            return "no canary rollout of \(service) is in its steps\(lastState.map { " (its last rollout is \($0.rawValue))" } ?? ""): "
                + "promote and abort act on a rollout with 'strategy: canary' while it shifts traffic; `imgdeploy status \(service)` shows where it is"
        case .cleanupFailed(let reason):
            return "\(reason); every release still kept is complete, and `imgdeploy gc` tries again"
        }
    }
}
