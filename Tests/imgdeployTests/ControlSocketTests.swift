import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// The deploy daemon's control socket: only its owner may connect, and a spec that arrives as JSON is
/// held to the same rules as one read from YAML.
@Suite("imgdeploy control socket", .mayBlock)
struct ControlSocketTests {
    /// A release spec as the client sends it (JSON of `ReleaseSpec`), with fields replaced.
    func json(_ replacing: [String: String] = [:]) -> String {
        let second = "[0,1000000000000000000]", tenSeconds = "[0,10000000000000000000]"
        var fields: [String: String] = [
            "service": #""hello""#,
            "image": "\"hello@sha256:\(String(repeating: "a", count: 64))\"",
            "source": #"{"store":{"path":"/nonexistent"}}"#,
            "replicas": "1", "port": "8080",
            "listen": #"{"host":"127.0.0.1","port":9000}"#,
            "strategy": #""blue-green""#, "runner": #""runc""#,
            "health": #"{"interval":\#(second),"timeout":\#(second),"healthyAfter":2,"deadline":\#(tenSeconds)}"#,
            "stopTimeout": second,
            "limits": #"{"pids":1024}"#,
            "unpack": #"{"allowSetuid":false,"maxBytes":4294967296}"#,
        ]
        for (key, value) in replacing { fields[key] = value }
        return "{" + fields.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
    }

    @Test("the socket is the owner's alone; JSON specs that break the YAML rules are refused with the rule")
    func jsonSpecs() throws {
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let socket = daemon.state + "/imgdeploy.sock"
        var info = stat()
        #expect(stat(socket, &info) == 0 && info.st_mode & 0o777 == 0o600, "mode \(String(info.st_mode & 0o777, radix: 8))")
        func apply(_ body: String) throws -> (status: String, body: String) {
            let file = makeTemporaryDirectory("json") + "/spec.json"
            write(body, to: file)
            let result = try run("/usr/bin/curl", ["-s", "-w", "\n%{http_code}", "--unix-socket", socket, "-X", "POST",
                                                   "-H", "Content-Type: application/json", "--data-binary", "@" + file, "http://imgdeploy/v1/apply"])
            let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            return (String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
        }
        let cases: [([String: String], String)] = [
            (["replicas": "0"], "'replicas' must be from 1 to 64"),
            (["replicas": "100000"], "'replicas' must be from 1 to 64"),
            (["service": #""../../etc""#], "'service' must be"),
            (["port": "70000"], "'port' must be from 1 to 65535"),
            (["source": #"{"store":{"path":"relative/store"}}"#], "absolute path"),
            (["source": #"{"registry":{"base":"file:///etc"}}"#], "a registry 'source'"),
            (["health": #"{"path":"/x HTTP/1.1\r\nHost: evil","interval":[0,1000000000000000000],"timeout":[0,1000000000000000000],"healthyAfter":2,"deadline":[0,10000000000000000000]}"#], "'health.path'"),
            (["health": #"{"interval":[0,0],"timeout":[0,1000000000000000000],"healthyAfter":2,"deadline":[0,10000000000000000000]}"#], "longer than zero"),
            (["unpack": #"{"allowSetuid":false,"maxBytes":-1}"#], "'unpack.maxSize'"),
            (["limits": #"{"pids":0}"#], "'limits.pids'"),
        ]
        for (fields, message) in cases {
            let answer = try apply(json(fields))
            #expect(answer.status == "400" && answer.body.contains(message), "\(fields): \(answer.status) \(answer.body)")
        }
        // The same spec, valid, gets past validation (and fails later only because its image is not there).
        let valid = try apply(json())
        #expect(!valid.body.contains("is not valid"), "\(valid.body)")
    }
}

@Suite("imgdeploy front control socket against hostile clients", .mayBlock)
struct FrontControlTests {
    @Test("a control connection that sends nothing does not hold up others; bad JSON and a line over 1 MiB are refused; a late pool change is not applied over a later one; silent connections are served a bounded number at a time; a paused front accepts nothing until its successor goes, takes its control socket back from one that died before taking over, and retires for one that published and runs; a front accepts at its first pool, or after 5 s without one")
    func silentAndOversizedClients() throws {
        let result = try run("/usr/bin/python3", [repositoryRoot + "/fixtures/hostile/front_control.py", imgdeployBinary, makeTemporaryDirectory("front")])
        let object = try #require((try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any],
                                  "the script said: \(result.stdout)\(result.stderr)")
        #expect(object["state_ok"] as? Bool == true, "\(result.stdout)\(result.stderr)")
        #expect(object["silent_still_open"] as? Bool == true, "the answer came while the silent connection was still open: \(object)")
        #expect((object["bad_json"] as? String ?? "").contains("\"ok\":false") && (object["bad_json"] as? String ?? "").contains("not valid"), "\(object)")
        #expect((object["oversized"] as? String ?? "").contains("longer than 1 MiB") || (object["oversized"] as? String ?? "").hasPrefix("closed"), "\(object)")
        #expect(object["state_after"] as? Bool == true, "the front still answers: \(object)")
        #expect(object["late_active"] as? [String] == ["a"] && object["late_version"] as? Int == 10,
                "a pool change that arrives after a later one is not applied: \(object)")
        #expect(object["unversioned_active"] as? [String] == ["c"], "\(object)")
        #expect((object["threads_with_100_silent"] as? Int ?? 1000) < 64, "a thread per silent control connection: \(object)")
        #expect(object["state_while_silent"] as? Bool == true, "the daemon's request is answered once silent ones time out: \(object)")
        #expect(object["pause_ok"] as? Bool == true && object["answered_while_paused"] as? Bool == false && object["successor_accepted"] as? Bool == true,
                "a front that handed its socket over and paused accepts nothing; its successor does: \(object)")
        #expect(object["answered_after"] as? Bool == true, "a successor that went without taking over leaves the front accepting again: \(object)")
        #expect(object["second_handover"] as? Bool == false, "a second successor was handed the socket while the first was taking over: \(object)")
        #expect(object["dead_successor_published"] as? Bool == true && object["answered_while_successor_published"] as? Bool == false
                    && object["queued_answered_after_successor_died"] as? Bool == true && object["control_back"] as? Bool == true,
                "a successor that published its control socket and died before taking over leaves the front serving, its control socket back: \(object)")
        #expect(object["leftover_folders"] as? [String] == [], "the control socket published again left its private folder: \(object)")
        #expect(object["live_handover_ok"] as? Bool == true && object["retired_for_live_successor"] as? Bool == true,
                "a successor that published and hung up while it runs is taken to serve: the front retires: \(object)")
        #expect(object["exit"] as? Int == 0, "the front ends cleanly: \(object)")
        #expect(object["awaiting_pool_at_start"] as? Bool == true && object["answered_before_pool"] as? Bool == false
                    && object["awaiting_pool_after"] as? Bool == false && object["answered_after_pool"] as? Bool == true,
                "a front started as the daemon starts it accepts at its first pool, and the client that waited is answered: \(object)")
        #expect(object["orphan_answered_at_once"] as? Bool == false && (object["orphan_answer"] as? String ?? "").contains("503")
                    && object["orphan_exit"] as? Int == 0,
                "a front that never gets a pool accepts after 5 s, answering 503 for want of instances: \(object)")
    }
}
