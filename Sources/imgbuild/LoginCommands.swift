import ArgumentParser
import Distribution
import Foundation

struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Check credentials against a registry and file them where docker, podman and crane read them.",
        discussion: """
        The registry is asked first (GET /v2/ with the credentials), so a wrong password is never filed. They go to \
        docker's config.json ($DOCKER_CONFIG/config.json, else ~/.docker/config.json, kept 0600) under 'auths', or to \
        the credential helper its credHelpers names for the registry (or its credsStore): docker-credential-NAME store. \
        push, pull and copy then use them, as they use those that docker login, podman login or skopeo login filed.
        """)

    @Argument(help: "HOST[:PORT], or http(s)://HOST[:PORT]; docker.io for Docker Hub.") var registry: String
    @Option(name: .shortAndLong, help: "The user name (asked for on a terminal when not given).") var username: String?
    @Flag(name: .customLong("password-stdin"), help: "Read the password from standard input (else IMGBUILD_PASSWORD, else asked for on a terminal).")
    var passwordStdin = false
    @Option(name: .customLong("ca-file"), help: "PEM file of CA certificates to trust besides the system's.") var caFile: String?
    @Flag(help: "Allow plain HTTP to a registry on another machine.") var insecure = false

    func run() async throws {
        let (host, base, negotiate) = try ImageLocation.registryHost(registry)
        guard let username = username ?? ask("Username: ", secret: false), !username.isEmpty else {
            throw ValidationError("give the user name with --username")
        }
        let environment = ProcessInfo.processInfo.environment
        var password: String?
        if passwordStdin {
            // One trailing line end goes, as docker takes it; anything else is part of the password.
            var text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            if text.hasSuffix("\n") { text.removeLast() }
            if text.hasSuffix("\r") { text.removeLast() }
            password = text
        } else {
            password = environment["IMGBUILD_PASSWORD"] ?? ask("Password: ", secret: true)
        }
        guard let password, !password.isEmpty else {
            throw ValidationError("give the password on standard input with --password-stdin (or in IMGBUILD_PASSWORD)")
        }
        var options = RegistryOptions()
        options.caFile = caFile
        options.insecure = insecure
        options.credentials = RegistryCredentials(username: username, password: password)
        let client = negotiate ? try await RegistryClient.negotiating(base: base, repository: "", push: false, options: options)
            : try RegistryClient(base: base, repository: "", push: false, options: options)
        guard client.sendsCredentials else {
            await client.shutdown()
            throw ValidationError("\(host) does not speak TLS, and a password is never sent in the clear to another machine by falling back from HTTPS: "
                + "if you mean plain HTTP, write http://\(host) with --insecure")
        }
        do { try await client.checkLogin() } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
        let place = try CredentialStore(environment: environment).save(options.credentials!, for: host)
        print("logged in to \(host) as \(username); credentials filed in \(place)")
    }

    /// Reads a line from the terminal (without echo for a secret); nil when standard input is not one.
    private func ask(_ prompt: String, secret: Bool) -> String? {
        guard isatty(STDIN_FILENO) == 1 else { return nil }
        if secret { return getpass(prompt).map { String(cString: $0) } }
        FileHandle.standardError.write(Data(prompt.utf8))
        return readLine()
    }
}

struct LogoutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logout",
        abstract: "Forget a registry's credentials (in config.json and in its credential helper).")

    @Argument(help: "HOST[:PORT], or http(s)://HOST[:PORT]; docker.io for Docker Hub.") var registry: String

    func run() throws {
        let (host, _, _) = try ImageLocation.registryHost(registry)
        let store = CredentialStore()
        if try store.remove(host: host) {
            print("removed the credentials for \(host)")
        } else {
            print("no credentials were filed for \(host) in \(store.configPath)")
        }
    }
}
