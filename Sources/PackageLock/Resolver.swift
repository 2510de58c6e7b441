import DebianArchive

/// Resolves requested packages into their whole dependency closure for one architecture, as apt does for
/// a root with nothing installed, but deterministically: the same indexes and requests give the same set.
///
/// - `Pre-Depends` and `Depends` are followed (not `Recommends` or `Suggests`, which apt is told to skip).
/// - A group `a | b` is met by a package already chosen if one satisfies any alternative; otherwise by the
///   first alternative that some package can satisfy.
/// - A name is met by a real package of that name: its candidate, as apt has one (the highest version), or
///   the version the lock had if the archive still offers it (a request may pin any version), else by a
///   package that `Provides` it
///   (an unversioned `Provides` meets only unversioned relations); among several providers, the one of the
///   highest `Priority`, then by name.
/// - Only one version of a name is chosen; a candidate that conflicts with (or breaks) a chosen package,
///   or is conflicted with by one, is passed over; conflicts left at the end are errors.
/// - `Essential` packages come in only when something depends on them or `?essential` is asked for.
public struct Resolver {
    /// A package of an index, and which repository (in the Imagefile's order) offered it.
    public struct Candidate: Sendable {
        public var record: PackageRecord
        public var repository: Int
        /// apt's pin priority of the suite that offers it (``ReleaseFile/pinPriority``): 500, 100 or 1.
        public var priority: Int

        public init(record: PackageRecord, repository: Int, priority: Int = 500) {
            self.record = record
            self.repository = repository
            self.priority = priority
        }
    }

    /// What the Imagefile asks for.
    public enum Request: Sendable, Hashable, CustomStringConvertible {
        case package(Relation)
        /// Every package marked `Essential: yes` (apt's `?essential` pattern).
        case essential

        public var description: String {
            switch self {
            case .package(let relation): return relation.description
            case .essential: return "?essential"
            }
        }
    }

    /// A chosen package and every edge that pulls it in.
    public struct Resolved: Sendable {
        public var candidate: Candidate
        /// `requested: NAME` or `PACKAGE Depends: RELATION GROUP`, sorted.
        public var requiredBy: [String]
    }

    public let architecture: String
    private var byName: [String: [Candidate]] = [:]
    private var providers: [String: [(candidate: Candidate, provided: Relation)]] = [:]

    /// `candidates`: every package of every repository's indexes for the architecture (others and `all`
    /// packages of other architectures are ignored).
    public init(candidates: [Candidate], architecture: String) {
        self.architecture = architecture
        for candidate in candidates where candidate.record.architecture == architecture || candidate.record.architecture == "all" {
            byName[candidate.record.name, default: []].append(candidate)
            for provided in candidate.record.provides {
                providers[provided.name, default: []].append((candidate, provided))
            }
        }
        for name in byName.keys {
            // apt's order: the highest pin priority (a backports or experimental suite's versions only when
            // nothing else offers the name), then the highest version, then the first repository.
            byName[name]!.sort { a, b in
                if a.priority != b.priority { return a.priority > b.priority }
                let order = DebianVersion.compare(a.record.version, b.record.version)
                return order != 0 ? order > 0 : a.repository < b.repository
            }
        }
    }

    /// Why a closure cannot be resolved.
    public enum ResolveError: Error, Sendable, CustomStringConvertible, Equatable {
        case noSuchPackage(String, architecture: String, versions: [String])
        case ambiguousVirtual(String, providers: [String])
        case unsatisfiable(package: String, version: String, field: String, group: String, reason: String)
        case conflict(package: String, version: String, field: String, relation: String, other: String)
        case noEssential(architecture: String)

        public var description: String {
            switch self {
            case let .noSuchPackage(name, architecture, versions):
                if versions.isEmpty {
                    return "no package '\(name)' for \(architecture) in the Imagefile's repositories: check its name (apt-cache policy \(name)), the repository's components, or add the repository that has it"
                }
                return "no version of '\(name)' for \(architecture) satisfies the Imagefile's request: the repositories offer \(versions.joined(separator: ", "))"
            case let .ambiguousVirtual(name, providers):
                return "'\(name)' is a virtual package provided by \(providers.joined(separator: ", ")): list the one you want under 'packages'"
            case let .unsatisfiable(package, version, field, group, reason):
                return "\(package) \(version) \(field) '\(group)', which nothing in the repositories satisfies (\(reason)): add a repository or component that has it, or pin another version of \(package)"
            case let .noEssential(architecture):
                return "'?essential' asks for the packages marked Essential, and the repositories have none for \(architecture): remove it, or add the archive's main component"
            case let .conflict(package, version, field, relation, other):
                return "\(package) \(version) \(field) '\(relation)', which \(other) (also chosen) matches: the set cannot be installed together; pin other versions or drop one of them"
            }
        }
    }

    /// The closure of `requests`, sorted by name. `preferring`: versions by package name to keep when they
    /// still satisfy (the lock's), so that re-locking changes only what must change.
    public func resolve(_ requests: [Request], preferring: [String: String] = [:]) throws(ResolveError) -> [Resolved] {
        var state = State(resolver: self, preferring: preferring)
        var roots: [(Candidate, String)] = []
        for request in requests {
            switch request {
            case .package(let relation):
                roots.append((try state.chooseRequested(relation), "requested: \(relation)"))
            case .essential:
                let before = roots.count
                for name in byName.keys.sorted() {
                    guard let best = state.ordered(name).first, best.record.essential else { continue }
                    roots.append((best, "requested: ?essential"))
                }
                if roots.count == before { throw .noEssential(architecture: architecture) }
            }
        }
        // Every request is chosen first (a pinned version holds against what dependencies would pick), then
        // each one's closure, in the Imagefile's order.
        for (candidate, reason) in roots {
            if let chosen = state.selected[candidate.record.name], chosen.candidate.record.version != candidate.record.version {
                throw .conflict(package: candidate.record.name, version: candidate.record.version.description, field: "is requested, and so is",
                                relation: "\(candidate.record.name) \(chosen.candidate.record.version)", other: "another request")
            }
            state.select(candidate, reason: reason)
        }
        for (candidate, _) in roots { try state.closeOver(candidate) }
        try state.checkConflicts()
        return state.selected.values.sorted { $0.candidate.record.name < $1.candidate.record.name }
    }

    private static let priorityRank = ["required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4]

    private struct State {
        let resolver: Resolver
        let preferring: [String: String]
        var selected: [String: Resolved] = [:]
        /// Chosen packages by each name they provide.
        var provided: [String: [(name: String, relation: Relation)]] = [:]
        /// The Conflicts and Breaks relations of chosen packages, by the name they name.
        var conflicting: [String: [(name: String, relation: Relation)]] = [:]

        init(resolver: Resolver, preferring: [String: String]) {
            self.resolver = resolver
            self.preferring = preferring
        }

        /// A name's candidates, the preferred version first.
        func ordered(_ name: String) -> [Candidate] {
            let all = resolver.byName[name] ?? []
            guard let preferred = preferring[name], let index = all.firstIndex(where: { $0.record.version.description == preferred }) else { return all }
            var result = all
            result.insert(result.remove(at: index), at: 0)
            return result
        }

        func matchesQualifier(_ relation: Relation) -> Bool {
            guard let qualifier = relation.architectureQualifier else { return true }
            return qualifier == "any" || qualifier == "native" || qualifier == resolver.architecture
        }

        /// `name:any` is met only by a package marked `Multi-Arch: allowed` (or a provider marked
        /// `foreign` or `allowed`), as dpkg and apt have it.
        func meetsQualifier(_ candidate: Candidate, _ relation: Relation, provided: Bool) -> Bool {
            guard relation.architectureQualifier == "any" else { return true }
            let multiArch = candidate.record.multiArch
            return multiArch == "allowed" || (provided && multiArch == "foreign")
        }

        /// The versions of a name a dependency may take: the lock's, if the archive still offers it, and apt's
        /// candidate (the highest). Older versions are apt's too only when a request pins them.
        func dependencyCandidates(_ name: String) -> [Candidate] {
            let all = ordered(name)
            guard let first = all.first else { return [] }
            let highest = resolver.byName[name]!.first!
            return first.record.version.description == highest.record.version.description ? [first] : [first, highest]
        }

        mutating func chooseRequested(_ relation: Relation) throws(ResolveError) -> Candidate {
            let real = ordered(relation.name)
            if !real.isEmpty {
                guard let chosen = real.first(where: { relation.constraint?.isSatisfied(by: $0.record.version) ?? true }) else {
                    throw .noSuchPackage(relation.name, architecture: resolver.architecture, versions: real.map(\.record.version.description))
                }
                return chosen
            }
            let providing = providerCandidates(relation)
            let names = Set(providing.map(\.record.name)).sorted()
            if names.count == 1 { return providing[0] }
            if names.count > 1 { throw .ambiguousVirtual(relation.name, providers: names) }
            throw .noSuchPackage(relation.name, architecture: resolver.architecture, versions: [])
        }

        /// Packages that provide `relation`'s name in a way that meets it, best first.
        func providerCandidates(_ relation: Relation) -> [Candidate] {
            let matching = (resolver.providers[relation.name] ?? []).filter { entry in
                guard let constraint = relation.constraint else { return true }
                guard let version = entry.provided.constraint, version.op == .equal else { return false }
                return constraint.isSatisfied(by: version.version)
            }.map(\.candidate)
            return matching.sorted { a, b in
                let ra = Resolver.priorityRank[a.record.priority] ?? 5, rb = Resolver.priorityRank[b.record.priority] ?? 5
                if ra != rb { return ra < rb }
                if a.record.name != b.record.name { return a.record.name < b.record.name }
                return DebianVersion.compare(a.record.version, b.record.version) > 0
            }
        }

        mutating func select(_ candidate: Candidate, reason: String) {
            let name = candidate.record.name
            if selected[name] == nil {
                selected[name] = Resolved(candidate: candidate, requiredBy: [])
                for relation in candidate.record.provides { provided[relation.name, default: []].append((name, relation)) }
                for relation in (candidate.record.conflicts + candidate.record.breaks).joined() {
                    conflicting[relation.name, default: []].append((name, relation))
                }
            }
            if !selected[name]!.requiredBy.contains(reason) {
                selected[name]!.requiredBy.append(reason)
                selected[name]!.requiredBy.sort()
            }
        }

        /// The chosen package that meets `relation`, if one does.
        func chosenSatisfying(_ relation: Relation) -> String? {
            guard matchesQualifier(relation) else { return nil }
            if let chosen = selected[relation.name], relation.constraint?.isSatisfied(by: chosen.candidate.record.version) ?? true,
               meetsQualifier(chosen.candidate, relation, provided: false) {
                return relation.name
            }
            for entry in provided[relation.name] ?? [] where meetsQualifier(selected[entry.name]!.candidate, relation, provided: true) {
                guard let constraint = relation.constraint else { return entry.name }
                if let version = entry.relation.constraint, version.op == .equal, constraint.isSatisfied(by: version.version) { return entry.name }
            }
            return nil
        }

        /// Whether `candidate` and the chosen packages conflict, either way: the chosen package's name if so.
        func conflictWithChosen(_ candidate: Candidate) -> String? {
            for group in candidate.record.conflicts + candidate.record.breaks {
                for relation in group {
                    if let other = chosenSatisfying(relation), other != candidate.record.name { return other }
                }
            }
            for name in [candidate.record.name] + candidate.record.provides.map(\.name) {
                for entry in conflicting[name] ?? [] where entry.name != candidate.record.name && meets(candidate, entry.relation) {
                    return entry.name
                }
            }
            return nil
        }

        func meets(_ candidate: Candidate, _ relation: Relation) -> Bool {
            guard matchesQualifier(relation) else { return false }
            if candidate.record.name == relation.name {
                return (relation.constraint?.isSatisfied(by: candidate.record.version) ?? true) && meetsQualifier(candidate, relation, provided: false)
            }
            return candidate.record.provides.contains { provided in
                guard provided.name == relation.name else { return false }
                guard let constraint = relation.constraint else { return true }
                guard let version = provided.constraint, version.op == .equal else { return false }
                return constraint.isSatisfied(by: version.version)
            }
        }

        /// A candidate for one alternative not yet met, or why there is none.
        func candidate(for relation: Relation) -> (Candidate?, String) {
            guard matchesQualifier(relation) else {
                return (nil, "\(relation.name) for the architecture \(relation.architectureQualifier!) is not built here (\(resolver.architecture))")
            }
            if let chosen = selected[relation.name] {
                return (nil, "\(relation.name) \(chosen.candidate.record.version) is already chosen")
            }
            let real = dependencyCandidates(relation.name)
            let fitting = real.filter { (relation.constraint?.isSatisfied(by: $0.record.version) ?? true) && meetsQualifier($0, relation, provided: false) }
            for candidate in fitting where conflictWithChosen(candidate) == nil { return (candidate, "") }
            if let first = fitting.first {
                return (nil, "\(relation.name) \(first.record.version) conflicts with \(conflictWithChosen(first)!)")
            }
            for candidate in providerCandidates(relation) where selected[candidate.record.name] == nil && conflictWithChosen(candidate) == nil
                && meetsQualifier(candidate, relation, provided: true) {
                return (candidate, "")
            }
            if let first = real.first, relation.architectureQualifier == "any", !meetsQualifier(first, relation, provided: false) {
                return (nil, "\(relation.name) is not marked Multi-Arch: allowed, so ':any' cannot take it")
            }
            if !real.isEmpty {
                return (nil, "the candidate is \(relation.name) \(real.map(\.record.version.description).joined(separator: " (the lock's), or ")), as apt would install it")
            }
            return (nil, "no package is named or provides \(relation.name)")
        }

        /// Chooses, depth first, what `root` needs and what that needs in turn.
        mutating func closeOver(_ root: Candidate) throws(ResolveError) {
            var stack: [(candidate: Candidate, groups: [(field: String, group: [Relation])], next: Int)] = [(root, groups(of: root), 0)]
            while !stack.isEmpty {
                let top = stack.count - 1
                guard stack[top].next < stack[top].groups.count else {
                    stack.removeLast()
                    continue
                }
                let (field, group) = stack[top].groups[stack[top].next]
                stack[top].next += 1
                let package = stack[top].candidate.record
                let groupText = group.map(\.description).joined(separator: " | ")
                let reason = "\(package.name) \(field): \(groupText)"
                if let met = firstChosen(satisfying: group) {
                    select(selected[met]!.candidate, reason: reason)
                    continue
                }
                var reasons: [String] = []
                var chosen: Candidate?
                for relation in group {
                    let (candidate, why) = candidate(for: relation)
                    if let candidate {
                        chosen = candidate
                        break
                    }
                    reasons.append(why)
                }
                guard let chosen else {
                    throw .unsatisfiable(package: package.name, version: package.version.description, field: field, group: groupText,
                                         reason: reasons.joined(separator: "; "))
                }
                select(chosen, reason: reason)
                stack.append((chosen, groups(of: chosen), 0))
            }
        }

        func firstChosen(satisfying group: [Relation]) -> String? {
            for relation in group {
                if let name = chosenSatisfying(relation) { return name }
            }
            return nil
        }

        func groups(of candidate: Candidate) -> [(field: String, group: [Relation])] {
            candidate.record.preDepends.map { ("Pre-Depends", $0) } + candidate.record.depends.map { ("Depends", $0) }
        }

        /// Conflicts and Breaks among the chosen set.
        func checkConflicts() throws(ResolveError) {
            for chosen in selected.values.sorted(by: { $0.candidate.record.name < $1.candidate.record.name }) {
                let record = chosen.candidate.record
                for (field, groups) in [("Conflicts", record.conflicts), ("Breaks", record.breaks)] {
                    for relation in groups.joined() {
                        let named = [selected[relation.name]].compactMap { $0 } + (provided[relation.name] ?? []).compactMap { selected[$0.name] }
                        for other in named where other.candidate.record.name != record.name && meets(other.candidate, relation) {
                            throw .conflict(package: record.name, version: record.version.description, field: field, relation: relation.description,
                                            other: "\(other.candidate.record.name) \(other.candidate.record.version)")
                        }
                    }
                }
            }
        }
    }
}
