from aopcore import hookimpl
