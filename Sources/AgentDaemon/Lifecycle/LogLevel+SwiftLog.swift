import AgentCore
import Logging

extension LogLevel {
    /// swift-log's level for the contract's `log_level`.
    public var swiftLogLevel: Logger.Level {
        switch self {
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        }
    }
}
