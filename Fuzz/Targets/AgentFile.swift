// Fuzz target: an agent file's bytes through the YAML parser (libyaml) and the agent loader's
// checks, as a reload does for every file of agents.d. Compiled into one module with
// Sources/AgentCore (see Fuzz/run.sh) to reach the loader below its file-reading layer.
import YAML

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAgentFile(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard case .success(let root) = ConfigFile.parse(bytes, file: "fuzz.yaml") else { return 0 }
    _ = AgentLoader.definition(from: root, file: "fuzz.yaml", name: "fuzz")
    return 0
}
