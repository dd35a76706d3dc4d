/// Facts about this build, shared by `agentd --version`, `agentctl --version` and `status`.
public enum BuildInfo {
    public static let version = "0.1.0"
}
