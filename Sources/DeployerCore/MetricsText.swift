/// Prometheus text from several fronts made one exposition: each family's `# HELP` and `# TYPE` lines once
/// (the format allows one `# TYPE` per name), then every front's samples of it.
enum MetricsText {
    static func merge(_ texts: [String]) -> String {
        var order: [String] = []
        var headers: [String: [String]] = [:]
        var samples: [String: [String]] = [:]
        for text in texts {
            var family = ""
            for line in text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) {
                if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                    let name = line.split(separator: " ", maxSplits: 3).dropFirst(2).first.map(String.init) ?? ""
                    family = name
                    if headers[name] == nil { order.append(name); headers[name] = [] }
                    if !headers[name]!.contains(where: { $0.prefix(7) == line.prefix(7) }) { headers[name]!.append(line) }
                } else if !line.hasPrefix("#") {
                    if headers[family] == nil { order.append(family); headers[family] = [] }
                    samples[family, default: []].append(line)
                }
            }
        }
        return order.map { name in (headers[name]! + (samples[name] ?? [])).joined(separator: "\n") + "\n" }.joined()
    }
}
