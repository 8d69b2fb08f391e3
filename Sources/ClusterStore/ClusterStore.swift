public enum ClusterStorePlaceholder {}
