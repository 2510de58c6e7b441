import Testing
@testable import Distribution
import TestScheduling

@Suite("Where credentials may go", .mayBlock)
struct TokenRealmTests {
    @Test("a password goes to a token service only over HTTPS or on this machine, --insecure or not")
    func realms() {
        let policy = RegistryClient.tokenRealmPolicy
        #expect(policy("https://auth.example/token", "https://registry.example", true, false) == .withCredentials)
        #expect(policy("http://127.0.0.1:5001/token", "http://127.0.0.1:5000", true, false) == .withCredentials)
        #expect(policy("http://localhost:5001/token", "http://registry.example", true, true) == .withCredentials)
        for insecure in [false, true] {
            guard case .refused(let reason) = policy("http://evil.example/token", "http://registry.example", true, insecure) else {
                Issue.record("a password would travel in the clear to another machine (insecure: \(insecure))"); continue
            }
            #expect(reason.contains("evil.example"), "the error must say which host asked: \(reason)")
            // An HTTPS registry that sends clients to a plain-HTTP realm is a downgrade, with or without a password.
            #expect(policy("http://evil.example/token", "https://registry.example", false, insecure) != .anonymous)
        }
        #expect(policy("http://other.example/token", "http://registry.example", false, true) == .anonymous)
        #expect(policy("http://other.example/token", "http://registry.example", false, false) != .anonymous)
        for realm in ["file:///etc/passwd", "ftp://x/token", "gopher://x", "//no-scheme", "", "https://"] {
            #expect(policy(realm, "https://registry.example", true, true) != .withCredentials, "\(realm)")
        }
    }
}
