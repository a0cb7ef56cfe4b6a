# core/data
