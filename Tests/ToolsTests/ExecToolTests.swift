import JSON
import Testing

@testable import Tools

@Suite struct ExecToolValidationTests {
    let parameters: JSONObject = ["type": "object", "properties": ["path": ["type": "string"]]]

    @Test func aSoundDefinitionHasNoProblems() {
        let tool = ExecTool(argv: ["/usr/bin/df", "-h", "{path}", "--x={nope}"], env: ["LANG": "C.UTF-8", "_A9": "1"])
        #expect(tool.problems(parameters: parameters).isEmpty)
    }

    @Test func theExecutableMustBeAnAbsolutePathToAnExecutableFile() {
        let directory = TemporaryDirectory()
        let plainFile = directory.path + "/plain"
        ProcessProbe.writeFile(plainFile, "data\n", mode: 0o644)
        let cases: [(String, ExecToolProblem.Code)] = [
            ("df", .relativeExecutable("df")),
            ("/nonexistent/df", .executableMissing("/nonexistent/df")),
            ("/usr/bin", .executableNotRegularFile("/usr/bin")),
            (plainFile, .executableNotExecutable(plainFile)),
        ]
        for (executable, expected) in cases {
            #expect(ExecTool(argv: [executable]).problems(parameters: nil).map(\.code) == [expected])
        }
        #expect(ExecTool(argv: []).problems(parameters: nil).map(\.code) == [.emptyArgv])
    }

    @Test func placeholdersMustNamePropertiesOfParameters() {
        let tool = ExecTool(argv: ["/bin/echo", "{path}", "{depth}"])
        let problems = tool.problems(parameters: parameters)
        #expect(problems.map(\.code) == [.unknownParameter(name: "depth", argvIndex: 2)])
        #expect(problems.first?.description == #"exec[2] "{depth}" names no property of parameters"#)
        // Agent mode: the schema is the Mistral agent's, so there is nothing to check against.
        #expect(tool.problems(parameters: nil).isEmpty)
    }

    @Test func environmentNamesMustBeShellNames() {
        let tool = ExecTool(argv: ["/bin/echo"], env: ["1A": "x", "A-B": "x", "": "x", "A=B": "x", "OK_1": "x"])
        #expect(
            tool.problems(parameters: nil).map(\.code) == [
                .invalidEnvironmentName(""), .invalidEnvironmentName("1A"),
                .invalidEnvironmentName("A-B"), .invalidEnvironmentName("A=B"),
            ])
    }

    @Test func limitsMustBeInRange() {
        let tooMuch = ExecTool(argv: ["/bin/echo"], maxOutput: 16 * 1024 * 1024 + 1)
        #expect(tooMuch.problems(parameters: nil).map(\.code) == [.maxOutputTooLarge(16 * 1024 * 1024 + 1)])
        #expect(ExecTool(argv: ["/bin/echo"], maxOutput: 16 * 1024 * 1024).problems(parameters: nil).isEmpty)
        let zero = ExecTool(argv: ["/bin/echo"], timeout: .zero, maxOutput: 0)
        #expect(zero.problems(parameters: nil).map(\.code) == [.maxOutputNotPositive(0), .timeoutNotPositive(.zero)])
    }

    @Test func defaultsAreTheContracts() {
        let tool = ExecTool(argv: ["/bin/echo"])
        #expect(tool.timeout == .seconds(30))
        #expect(tool.maxOutput == 65536)
        #expect(tool.env.isEmpty)
        #expect(tool.cwd == nil)
    }
}

@Suite struct ArgvTemplateTests {
    @Test func onlyWholeBracedElementsArePlaceholders() {
        #expect(ArgvTemplate.placeholderName("{path}") == "path")
        #expect(ArgvTemplate.placeholderName("{a b}") == "a b")
        for literal in ["{}", "{", "}", "x{path}", "{path}x", "{a}{b}", "{{a}}", "path"] {
            #expect(ArgvTemplate.placeholderName(literal) == nil)
        }
    }

    @Test func theExecutableIsNeverSubstituted() {
        #expect(ArgvTemplate.substitute(["{x}", "{x}"], arguments: ["x": "a"]) == .success(["{x}", "a"]))
    }

    @Test func anArgumentWithANULIsRefused() {
        let result = ArgvTemplate.substitute(["/bin/echo", "{x}"], arguments: ["x": "a\u{0}b"])
        #expect(
            result == .failure(.init(code: .argumentContainsNUL, name: "x", argvIndex: 1)))
        // Inside JSON text a NUL is escaped, so a non-string argument can carry one.
        #expect(
            ArgvTemplate.substitute(["/bin/echo", "{x}"], arguments: ["x": ["a\u{0}"]])
                == .success(["/bin/echo", #"["a\u0000"]"#]))
    }
}
