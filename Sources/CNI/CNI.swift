public enum CNIPlaceholder {}
