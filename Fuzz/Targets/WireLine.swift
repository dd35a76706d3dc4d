// Fuzz target: one agent-socket or control-socket request line through the JSON parser and
// AgentProtocol's RequestDecoder, as ConnectionHandler does for every line it frames.
import AgentProtocol
import JSON

private let agentSocket = RequestDecoder(makeID: { .string("fuzz") }, acceptsCommands: false)
private let controlSocket = RequestDecoder(makeID: { .string("fuzz") }, acceptsCommands: true)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWireLine(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    _ = agentSocket.decode(bytes)
    _ = controlSocket.decode(bytes)
    // Whatever parses must survive a round trip through the writer unchanged.
    if let value = try? JSONParser.parse(bytes: bytes) {
        let text = value.jsonText
        guard let again = try? JSONParser.parse(text), again == value else {
            fatalError("JSON round trip changed the value: \(text)")
        }
    }
    return 0
}
