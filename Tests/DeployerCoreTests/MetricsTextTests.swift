@testable import DeployerCore
import Testing
import TestScheduling

@Suite("Metrics of several fronts as one exposition", .mayBlock)
struct MetricsTextTests {
    @Test("each family's TYPE line once, then every front's samples of it, families in the order first seen")
    func merge() {
        let a = """
            # TYPE imgdeploy_requests_total counter
            imgdeploy_requests_total{service="a",digest="sha256:1",code="200"} 3
            # TYPE imgdeploy_request_duration_seconds histogram
            imgdeploy_request_duration_seconds_bucket{service="a",digest="sha256:1",le="+Inf"} 3

            """
        let b = """
            # TYPE imgdeploy_requests_total counter
            imgdeploy_requests_total{service="b",digest="sha256:2",code="500"} 1

            """
        let merged = MetricsText.merge([a, b])
        #expect(merged == """
            # TYPE imgdeploy_requests_total counter
            imgdeploy_requests_total{service="a",digest="sha256:1",code="200"} 3
            imgdeploy_requests_total{service="b",digest="sha256:2",code="500"} 1
            # TYPE imgdeploy_request_duration_seconds histogram
            imgdeploy_request_duration_seconds_bucket{service="a",digest="sha256:1",le="+Inf"} 3

            """)
        #expect(MetricsText.merge([]) == "" && MetricsText.merge([a]) == a)
    }
}
