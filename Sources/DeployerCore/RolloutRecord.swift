import Foundation
import LoadBalancer
import OCI
import UnpackedReleases
import ReleaseSpec

/// The states of a rollout, as Argo Rollouts and Kubernetes name them.
public enum RolloutState: String, Sendable, Codable, Equatable {
    case pending = "Pending"
    case verifying = "Verifying"
    case provisioning = "Provisioning"
    case healthChecking = "HealthChecking"
    case shifting = "Shifting"
    case scaleDownDelay = "ScaleDownDelay"
    case succeeded = "Succeeded"
    case aborting = "Aborting"
    case failed = "Failed"

    public var isFinal: Bool { self == .succeeded || self == .failed }
}

/// One rollout: of which image, how, through which states, and how it ended. Also a line of a service's history.
public struct RolloutRecord: Sendable, Codable, Equatable {
    public var service: String
    public var image: PinnedImage
    public var strategy: ReleaseSpec.Strategy
    public var state: RolloutState
    /// Why it failed, or nil.
    public var reason: String?
    /// What kind of change: `deploy`, `rollback` or `readopt` (a daemon that started again carrying on the current release).
    public var kind: String
    public var started: Date
    public var finished: Date?
    public var transitions: [Transition]
    /// A rollback whose release was no longer kept here (outside the rollback window), so it was fetched
    /// again from the spec's source and verified like a new release.
    public var refetched: Bool?
    /// What was removed once it succeeded: the releases outside every service's rollback window that no
    /// instance used, and the store's blobs that only they reached.
    public var removed: ReleaseCollection?
    /// Why that removal did not happen, when it did not (the rollout itself succeeded).
    public var cleanupProblem: String?
    /// A canary's steps as they were observed, in order.
    public var canarySteps: [CanaryStepRecord]?

    public struct Transition: Sendable, Codable, Equatable {
        public var state: RolloutState
        public var at: Date
        public var note: String?
    }

    public init(service: String, image: PinnedImage, strategy: ReleaseSpec.Strategy, kind: String) {
        self.service = service
        self.image = image
        self.strategy = strategy
        self.state = .pending
        self.kind = kind
        self.started = Date()
        self.transitions = [Transition(state: .pending, at: started, note: nil)]
    }

    public mutating func enter(_ state: RolloutState, note: String? = nil) {
        self.state = state
        transitions.append(Transition(state: state, at: Date(), note: note))
        if state.isFinal { finished = Date() }
    }
}

/// One step of a canary rollout: the share of requests the new version got, what the front saw of both
/// versions in the step's window, and how the step ended.
public struct CanaryStepRecord: Sendable, Codable, Equatable {
    /// The step's place in the spec's `canary.steps`, from 1.
    public var step: Int
    /// The percent of requests sent to the new version.
    public var percent: Int
    /// How long the step was observed.
    public var seconds: Double
    /// The old version's figures in the window, and the new one's.
    public var old: TrafficFigures
    public var new: TrafficFigures
    public var outcome: Outcome
    /// The rule the step broke (with its figures), or why it ended otherwise.
    public var reason: String?

    public enum Outcome: String, Sendable, Codable, Equatable {
        case passed, failed, promoted, aborted
    }

    public init(step: Int, percent: Int, seconds: Double, old: TrafficFigures, new: TrafficFigures, outcome: Outcome, reason: String? = nil) {
        self.step = step
        self.percent = percent
        self.seconds = seconds
        self.old = old
        self.new = new
        self.outcome = outcome
        self.reason = reason
    }
}

/// One instance as `status` shows it.
public struct InstanceStatus: Sendable, Codable, Equatable {
    public var id: String
    public var image: PinnedImage
    /// The image manifest its root came from (this platform's, when the image is an index).
    public var manifest: Digest?
    /// The release tree's digest (``ReleaseTree``) checked just before it started; nil if not known
    /// (adopted from a daemon that did not record it).
    public var tree: Digest?
    /// The signatures, test record and SBOM that the spec's `verify` policy admitted its release with.
    public var admission: Admission?
    public var port: Int
    public var pid: Int32?
    /// Taking traffic at the front.
    public var serving: Bool
    public var restarts: Int
    public var lastExit: Int32?
}

/// A service as `status` shows it.
public struct ServiceStatus: Sendable, Codable, Equatable {
    public var service: String
    public var listen: String
    /// The image taking traffic, if any.
    public var current: PinnedImage?
    public var instances: [InstanceStatus]
    public var lastRollout: RolloutRecord?
    public var requests: Int
    public var failedRequests: Int
    public var retriedRequests: Int
    /// The front's process, when it answers.
    public var frontPID: Int32?
    /// A rollout, rollback or front upgrade is under way.
    public var rolloutRunning: Bool?
    /// The releases kept for an instant rollback, newest (the serving one) first.
    public var releases: [KeptRelease]?
    /// The front's restarts, and its crash loop if it is in one (absent from older daemons).
    public var frontRestarts: FrontRestartStatus?
}

/// One release in a service's rollback window, as `status` shows it.
public struct KeptRelease: Sendable, Codable, Equatable {
    public var image: PinnedImage
    /// Its unpacked folder's size on disk; nil when it is not unpacked here (a rollback to it fetches it again).
    public var bytes: Int64?
}
