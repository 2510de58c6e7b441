import Imagefile
import OCI

/// Combines the Imagefile's `config` with the base image's: what the Imagefile sets wins, environment
/// variables and labels are merged by name, ports and volumes are added.
enum ConfigMerger {
    static let healthPathLabel = "dev.imgbuild.health.http"
    static let healthPortLabel = "dev.imgbuild.health.port"

    static func execution(_ config: Imagefile.RunConfig, over base: ImageConfig.Execution?) -> ImageConfig.Execution? {
        var result = base ?? ImageConfig.Execution()
        if let entrypoint = config.entrypoint {
            result.entrypoint = entrypoint
            // As Docker does: a new entrypoint resets the base's cmd unless the Imagefile gives one.
            if config.cmd == nil { result.cmd = nil }
        }
        if let cmd = config.cmd { result.cmd = cmd }
        if !config.env.isEmpty {
            var env = result.env ?? []
            for (key, value) in config.env {
                // As Docker does: a variable the base sets is replaced where it stands; new ones follow.
                if let index = env.firstIndex(where: { $0 == key || $0.hasPrefix(key + "=") }) {
                    env[index] = "\(key)=\(value)"
                } else {
                    env.append("\(key)=\(value)")
                }
            }
            result.env = env
        }
        if let workdir = config.workdir { result.workingDir = workdir }
        if let user = config.user { result.user = user }
        if !config.ports.isEmpty {
            var ports = result.exposedPorts ?? [:]
            for port in config.ports { ports[port] = EmptyObject() }
            result.exposedPorts = ports
        }
        if !config.volumes.isEmpty {
            var volumes = result.volumes ?? [:]
            for volume in config.volumes { volumes[volume] = EmptyObject() }
            result.volumes = volumes
        }
        var labels = result.labels ?? [:]
        for (key, value) in config.labels { labels[key] = value }
        if let health = config.health {
            labels[healthPathLabel] = health.path
            labels[healthPortLabel] = String(health.port)
        }
        result.labels = labels.isEmpty ? nil : labels
        if let signal = config.stopSignal { result.stopSignal = signal }
        return result == ImageConfig.Execution() ? nil : result
    }
}
