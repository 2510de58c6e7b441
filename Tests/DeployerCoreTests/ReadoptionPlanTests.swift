import Foundation
import OCI
import ReleaseSpec
@testable import DeployerCore
import Testing
import TestScheduling

@Suite("What a daemon that started again keeps", .mayBlock)
struct ReadoptionPlanTests {
    let serving = PinnedImage(name: try! RepositoryName("hello"), digest: Digest.of(Data("serving".utf8)))
    let other = PinnedImage(name: try! RepositoryName("hello"), digest: Digest.of(Data("other".utf8)))

    @Test("the serving release keeps its running instances, those the front sends requests to first, up to replicas")
    func keepers() {
        let plan = ReadoptionPlan(instances: [("hello-1", serving, true), ("hello-2", serving, true), ("hello-3", serving, true),
                                              ("hello-4", other, true), ("hello-5", serving, false)],
                                  inFront: ["hello-3"], serving: serving, replicas: 2)
        #expect(plan.keep == ["hello-3", "hello-1"])
        #expect(plan.retire == ["hello-2", "hello-4", "hello-5"])
        #expect(plan.missing == 0)
    }

    @Test("fewer running than replicas: the rest are started; none running: the release is rolled out afresh")
    func missing() {
        let some = ReadoptionPlan(instances: [("hello-7", serving, true), ("hello-8", other, true)], inFront: [], serving: serving, replicas: 3)
        #expect(some.keep == ["hello-7"] && some.retire == ["hello-8"] && some.missing == 2)
        let none = ReadoptionPlan(instances: [("hello-8", other, true), ("hello-9", serving, false)], inFront: ["hello-8"], serving: serving, replicas: 3)
        #expect(none.keep.isEmpty && none.retire == ["hello-8", "hello-9"] && none.missing == 0)
    }
}
