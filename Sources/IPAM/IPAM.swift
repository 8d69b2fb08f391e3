public enum IPAMPlaceholder {}
